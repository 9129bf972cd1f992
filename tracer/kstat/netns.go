package kstat

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// InNetNS runs fn with a Reader of the network namespace nsFD (an fd of
// /proc/PID/ns/net or /run/netns/NAME), and returns fn's error. fn runs on
// another goroutine, locked to an OS thread that joined the namespace; the
// Reader must not be used after fn returns. Joining needs CAP_SYS_ADMIN.
//
// The thread is never unlocked, so it ends with its goroutine instead of
// going back to the scheduler still inside the namespace, where it would
// run unrelated goroutines there.
func InNetNS(nsFD int, fn func(*Reader) error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(nsFD, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("join network namespace: %w", err)
			return
		}
		// NewReader reads /proc/thread-self/net, this thread's namespace;
		// /proc/sys/net follows the reading thread already.
		r, err := NewReader("/proc")
		if err != nil {
			errc <- err
			return
		}
		errc <- fn(r)
	}()
	return <-errc
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
