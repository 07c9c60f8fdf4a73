//go:build !linux

package tunnel

import (
	"errors"
	"syscall"
)

// Without epoll the poll relay is not available: newPoller returns nil and
// every direction runs on a goroutine of its own (RelayGoroutines).

type poller struct{}

type pollInstance struct{}

func newPoller() *poller { return nil }

func (*poller) register(*pump) error { return errors.ErrUnsupported }

func (*poller) unregister(*pump) {}

func readNonblocking(syscall.RawConn, []byte) (int, error) { return 0, errors.ErrUnsupported }
