// Package nsthread runs code on an OS thread that may change its namespaces
// (setns, unshare) and is thrown away afterwards.
//
// A goroutine that changes its thread's namespaces must stay locked to it and
// exit locked, so that the Go runtime ends the thread instead of reusing it
// for unrelated goroutines. The main thread is the exception: the runtime
// cannot end it, so it parks it forever, still inside the namespace, and
// /proc/self (which names the main thread) then reports that namespace for
// the whole process. Run therefore never lets fn run on the main thread.
package nsthread

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// Run calls fn on a fresh, locked OS thread other than the main thread and
// returns its error. The thread is discarded when fn returns.
func Run(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() != unix.Getpid() {
			errc <- fn() // exits locked: the thread is discarded
			return
		}
		// On the main thread: keep it locked while another goroutine takes
		// the work (it cannot be scheduled here), then give it back untouched.
		done := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			errc <- fn()
			close(done)
		}()
		<-done
		runtime.UnlockOSThread()
	}()
	return <-errc
}

// InNetNS calls fn on a fresh thread (as Run) that has joined the network
// namespace nsFD refers to: sockets fn creates, sock_diag and BPF iterators
// it opens, and /proc/thread-self/net all belong to that namespace. Joining
// needs CAP_SYS_ADMIN.
func InNetNS(nsFD int, fn func() error) error {
	return Run(func() error {
		if err := unix.Setns(nsFD, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("join network namespace: %w", err)
		}
		return fn()
	})
}
