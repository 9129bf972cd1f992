package kstat

import (
	"github.com/twtrace/twtrace/internal/nsthread"
)

// InNetNS runs fn with a Reader of the network namespace nsFD (an fd of
// /proc/PID/ns/net or /run/netns/NAME), and returns fn's error. fn runs on
// another goroutine, locked to an OS thread that joined the namespace; the
// Reader must not be used after fn returns. Joining needs CAP_SYS_ADMIN.
//
// The thread is discarded afterwards (see package nsthread), so that it
// never runs unrelated goroutines inside the namespace.
func InNetNS(nsFD int, fn func(*Reader) error) error {
	return nsthread.InNetNS(nsFD, func() error {
		// NewReader reads /proc/thread-self/net, this thread's namespace;
		// /proc/sys/net follows the reading thread already.
		r, err := NewReader("/proc")
		if err != nil {
			return err
		}
		return fn(r)
	})
}

// ReadNetNS reads the counters and sysctls of the network namespace nsFD.
func ReadNetNS(nsFD int) (c Counters, s Sysctls, err error) {
	err = InNetNS(nsFD, func(r *Reader) error {
		if c, err = r.Counters(); err != nil {
			return err
		}
		s, err = r.Sysctls()
		return err
	})
	return c, s, err
}
