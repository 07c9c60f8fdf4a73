//go:build linux

package tunnel

import (
	"io"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// poller is the Server's epoll instance for the poll relay. It exists
// only while some direction is registered: the first registration creates
// it and starts its dispatcher, the last one's removal closes it (and so
// ends the dispatcher), so a Server with no parked tunnel holds neither a
// file descriptor nor a goroutine for it.
type poller struct {
	mu     sync.Mutex
	cur    *pollInstance // nil while nothing is registered
	nextID uint64
}

// pollInstance is one epoll instance and the directions registered in it.
type pollInstance struct {
	fd   int      // the epoll file descriptor, owned by file
	file *os.File // fd, waited on through Go's netpoller
	dirs map[uint64]*pump
}

// pollBatch is how many readiness events one epoll_wait takes.
const pollBatch = 128

// newPoller returns the poll relay's poller.
func newPoller() *poller { return &poller{} }

// register adds p's source socket (p.pd.rc) to the epoll instance,
// edge-triggered: an event comes each time bytes (or the end) arrive,
// including at once when some are already waiting.
func (pl *poller) register(p *pump) error {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	inst := pl.cur
	if inst == nil {
		var err error
		if inst, err = newPollInstance(); err != nil {
			return err
		}
	}
	pl.nextID++
	id := pl.nextID
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(uint32(id)), Pad: int32(uint32(id >> 32))}
	var cerr error
	err := p.pd.rc.Control(func(fd uintptr) {
		cerr = unix.EpollCtl(inst.fd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		if pl.cur == nil {
			_ = inst.file.Close()
		}
		return err
	}
	if pl.cur == nil {
		pl.cur = inst
		go inst.dispatch(pl)
	}
	inst.dirs[id] = p
	p.pd.id, p.pd.inst = id, inst
	return nil
}

// unregister removes p (if registered), closing the instance when it was
// the last.
func (pl *poller) unregister(p *pump) {
	if p.pd.id == 0 {
		return
	}
	inst := p.pd.inst
	pl.mu.Lock()
	delete(inst.dirs, p.pd.id)
	// A socket already closed has left the set by itself; Control refuses
	// a closed one, so a reused descriptor number is never touched.
	_ = p.pd.rc.Control(func(fd uintptr) {
		_ = unix.EpollCtl(inst.fd, unix.EPOLL_CTL_DEL, int(fd), nil)
	})
	last := len(inst.dirs) == 0
	if last {
		pl.cur = nil
	}
	pl.mu.Unlock()
	p.pd.id, p.pd.inst = 0, nil
	if last {
		// Outside mu: Close waits for the dispatcher to leave epoll_wait,
		// and the dispatcher takes mu.
		_ = inst.file.Close()
	}
}

// newPollInstance creates a non-blocking epoll instance that Go's
// netpoller can wait on (an epoll descriptor is readable while events are
// ready).
func newPollInstance() (*pollInstance, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	return &pollInstance{fd: fd, file: os.NewFile(uintptr(fd), "epoll"), dirs: map[uint64]*pump{}}, nil
}

// dispatch hands readiness events to their directions until the instance
// is closed. It waits in Go's netpoller, not in epoll_wait: between events
// it holds no thread.
func (inst *pollInstance) dispatch(pl *poller) {
	rc, err := inst.file.SyscallConn()
	if err != nil {
		return
	}
	var evs [pollBatch]unix.EpollEvent
	woken := make([]*pump, 0, pollBatch)
	_ = rc.Read(func(fd uintptr) bool {
		for {
			n, err := unix.EpollWait(int(fd), evs[:], 0)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return true
			}
			woken = woken[:0]
			pl.mu.Lock()
			for _, ev := range evs[:n] {
				id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
				if p := inst.dirs[id]; p != nil {
					woken = append(woken, p)
				}
			}
			pl.mu.Unlock()
			for _, p := range woken {
				p.ready()
			}
			if n < len(evs) {
				// Drained: the netpoller reports the next event
				// (edge-triggered on the epoll descriptor).
				return false
			}
		}
	})
}

// readNonblocking reads once from the non-blocking socket behind rc:
// errWouldBlock when nothing is there, io.EOF at its end. rc.Read holds
// the descriptor for the call, so a concurrent Close cannot hand its number
// to another socket meanwhile; on a closed connection it fails.
func readNonblocking(rc syscall.RawConn, b []byte) (n int, err error) {
	var rerr error
	if err := rc.Read(func(fd uintptr) bool {
		for {
			n, rerr = unix.Read(int(fd), b)
			if rerr != unix.EINTR {
				return true
			}
		}
	}); err != nil {
		return 0, err
	}
	switch {
	case rerr == unix.EAGAIN:
		return 0, errWouldBlock
	case rerr != nil:
		return 0, os.NewSyscallError("read", rerr)
	case n == 0 && len(b) > 0:
		return 0, io.EOF
	}
	return n, nil
}
