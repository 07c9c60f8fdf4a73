package tunnel

import (
	"errors"
	"net"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// Relay selects how a tunnel's directions wait for their next bytes
// ([Options].Relay). Both relays run the same frame state machine, with
// the same contract: frames verbatim, the proxy's Close frames between
// frames, splice for long payloads, nothing buffered while waiting.
type Relay int

const (
	// RelayGoroutines gives each direction a goroutine of its own, blocked
	// in a read while the tunnel is idle: two goroutines per tunnel. The
	// default.
	RelayGoroutines Relay = iota
	// RelayPoll parks a direction waiting for data on an epoll instance of
	// the Server's own, holding no goroutine and no pooled buffer: a
	// readable socket borrows a goroutine that runs the direction until a
	// non-blocking read finds nothing more, then parks it again. Writes,
	// and splices of long payloads, still block (with their deadlines) on
	// that goroutine. Only a direction whose source is a plain TCP
	// connection is parked; one reading TLS, or anything else, keeps a
	// goroutine as with RelayGoroutines. Linux only: elsewhere the Server
	// uses RelayGoroutines.
	RelayPoll
)

func (r Relay) String() string {
	switch r {
	case RelayGoroutines:
		return "goroutines"
	case RelayPoll:
		return "poll"
	}
	return "Relay(" + strconv.Itoa(int(r)) + ")"
}

// errWouldBlock is a non-blocking read that found nothing to read: the
// direction parks until its socket is readable. It never leaves the
// package.
var errWouldBlock = errors.New("tunnel: nothing to read yet")

// The states of a direction on the poll relay.
const (
	pollRunning int32 = iota // a goroutine runs the direction
	pollParked               // waiting for its socket: no goroutine
	pollAgain                // readiness arrived while running: run again before parking
	pollDone                 // the direction ended
)

// pollDir is a direction's part of the poll relay.
type pollDir struct {
	// rc is the direction's source socket once it is read directly and is
	// plain TCP: reads are non-blocking system calls through it. nil:
	// reads block as on the goroutine relay.
	rc     syscall.RawConn
	noPoll bool // the source cannot be polled: reads block
	state  atomic.Int32
	// id is the direction's registration with the Server's poller (0:
	// none), in inst. Only the goroutine running the direction sets it.
	id   uint64
	inst *pollInstance
}

// start runs the direction: on a goroutine of its own, or (poll relay) on
// a goroutine that lasts until the direction first has nothing to read.
func (p *pump) start() {
	if p.t.owner.poll == nil {
		go p.loop()
		return
	}
	go p.resume()
}

// readSrc reads once from the direction's source: a non-blocking read on
// the poll relay once the source is a plain TCP socket read directly
// (errWouldBlock when nothing is there), a blocking read otherwise.
func (p *pump) readSrc(b []byte) (int, error) {
	if p.t.owner.poll != nil && p.pd.rc == nil && !p.pd.noPoll && p.direct {
		if tc, ok := p.rd.(*net.TCPConn); ok {
			if rc, err := tc.SyscallConn(); err == nil {
				p.pd.rc = rc
			}
		}
		p.pd.noPoll = p.pd.rc == nil
	}
	if p.pd.rc != nil {
		return readNonblocking(p.pd.rc, b)
	}
	return p.rd.Read(b)
}

// resume runs the direction until a read would block, then parks it on
// the poller, or until it ends. Exactly one goroutine runs a direction at
// a time: the one that moved its state to pollRunning.
func (p *pump) resume() {
	for {
		err := p.run()
		if !errors.Is(err, errWouldBlock) {
			p.pd.state.Store(pollDone)
			p.t.owner.poll.unregister(p)
			p.report(time.Now().UnixNano())
			p.t.pumpDone(p, err)
			return
		}
		if p.r == p.w {
			// Everything read was forwarded: a parked direction keeps
			// only its head window.
			p.putBuf()
		}
		if p.pd.id == 0 {
			if err := p.t.owner.poll.register(p); err != nil {
				// The socket is closed (the next read says so) or epoll
				// refused it: the direction reads blocking from now on.
				p.pd.rc, p.pd.noPoll = nil, true
				continue
			}
		}
		if p.pd.state.CompareAndSwap(pollRunning, pollParked) {
			return
		}
		// Readiness arrived meanwhile (pollAgain).
		p.pd.state.Store(pollRunning)
	}
}

// ready is called when the direction's socket became readable, or was
// closed: a parked direction gets a goroutine, a running one runs once
// more before it parks.
func (p *pump) ready() {
	for {
		switch p.pd.state.Load() {
		case pollParked:
			if p.pd.state.CompareAndSwap(pollParked, pollRunning) {
				go p.resume()
				return
			}
		case pollRunning:
			if p.pd.state.CompareAndSwap(pollRunning, pollAgain) {
				return
			}
		default:
			return
		}
	}
}

// wake is called after the direction's source connection was closed by
// the tunnel: a closed socket leaves the epoll instance without an event,
// so a parked direction is resumed to read the error and end.
func (p *pump) wake() {
	if p.t.owner.poll != nil {
		p.ready()
	}
}
