package nsthread

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// Run never lends the main thread, even when called from the main goroutine
// locked to it (the worst case: the scheduler must put fn elsewhere).
func TestRunAvoidsMainThread(t *testing.T) {
	for range 50 {
		var tid int
		if err := Run(func() error { tid = unix.Gettid(); return nil }); err != nil {
			t.Fatal(err)
		}
		if tid == unix.Getpid() {
			t.Fatal("fn ran on the main thread")
		}
	}
	done := make(chan int)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var tid int
		_ = Run(func() error { tid = unix.Gettid(); return nil })
		done <- tid
	}()
	if <-done == unix.Getpid() {
		t.Fatal("fn ran on the main thread")
	}
}
