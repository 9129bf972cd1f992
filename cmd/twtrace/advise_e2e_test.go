package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/internal/tracertest"
)

// advise --for diagnoses a bind() refused in another network namespace
// with that namespace's sysctls, read in it: its tcp_fin_timeout (37 here,
// the host's is left as it is), not the host's and not "unknown".
func TestAdviseLiveOtherNamespace(t *testing.T) {
	ns := tracertest.NewNetNS(t)
	tracertest.LockBPF(t)
	if err := ns.Sysctl("net/ipv4/tcp_fin_timeout", "37"); err != nil {
		t.Fatal(err)
	}
	const port = 7044
	type result struct {
		code        int
		out, stderr string
	}
	ready := filepath.Join(t.TempDir(), "ready")
	res := make(chan result, 1)
	go func() {
		code, out, stderr := runCLI("advise", "--for", "5s", "--port", "7044", "--ready-file", ready)
		res <- result{code, out, stderr}
	}()
	var r result
	done := false
	wait := func() result {
		if !done {
			r, done = <-res, true
		}
		return r
	}
	t.Cleanup(func() { wait() }) // its programs detached before LockBPF lets the next test run
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("advise is not ready after 10 s")
		}
	}

	// In the namespace, on a thread that stays there while advise runs (the
	// session finds a namespace through a task in it): a listener without
	// SO_REUSEADDR, one connection the server closes first, then a second
	// bind() refused by the TIME_WAIT it left.
	release := make(chan struct{})
	bindErr := make(chan error, 2)
	go func() {
		bindErr <- ns.Do(func() error {
			addr := &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}
			lfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err == nil {
				if err = unix.Bind(lfd, addr); err == nil {
					err = unix.Listen(lfd, 8)
				}
			}
			if err == nil {
				time.Sleep(time.Second) // the session reads the new namespace's sysctls
				err = tracertest.CloseFirstFD(lfd, addr)
				unix.Close(lfd)
			}
			if err == nil {
				fd, _ := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
				err = unix.Bind(fd, addr)
				unix.Close(fd)
			}
			bindErr <- err
			<-release
			return nil
		})
	}()
	defer close(release)
	if err := <-bindErr; err != unix.EADDRINUSE {
		t.Fatalf("the second bind() in the namespace: %v; want EADDRINUSE", err)
	}
	wait()
	if r.code != 0 {
		t.Fatalf("advise: exit %d\n%s\n%s", r.code, r.out, r.stderr)
	}
	if !strings.Contains(r.out, "EADDRINUSE") || !strings.Contains(r.out, "TW101") {
		t.Fatalf("advise did not diagnose the refused bind():\n%s", r.out)
	}
	if !strings.Contains(r.out, "tcp_fin_timeout (now 37)") {
		t.Errorf("advise quotes no tcp_fin_timeout of the namespace (37):\n%s", r.out)
	}
}
