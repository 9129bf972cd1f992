package main

// The live view on a terminal (a pseudo-terminal of the test's own) ended by
// SIGHUP, as when the ssh session that runs it closes: exit 0, the terminal
// restored (the alternate screen left, the modes it changed put back), every
// program detached.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/internal/tracertest"
)

// openPTY opens a pseudo-terminal pair of 100x30.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		tracertest.Unavailable(t, err)
	}
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetWinsize(int(slave.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 30, Col: 100}); err != nil {
		t.Fatal(err)
	}
	return master, slave
}

// screen collects what a program writes to a terminal.
type screen struct {
	mu  sync.Mutex
	out strings.Builder
}

func (s *screen) read(master *os.File) {
	buf := make([]byte, 4096)
	for {
		n, err := master.Read(buf)
		s.mu.Lock()
		s.out.Write(buf[:n])
		s.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (s *screen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

func TestLiveViewSIGHUP(t *testing.T) {
	tracertest.Require(t)
	tracertest.LockBPF(t)
	bin := buildBinary(t)
	master, slave := openPTY(t)
	defer master.Close()
	defer slave.Close()
	before, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	ready := filepath.Join(t.TempDir(), "ready")
	cmd := exec.Command(bin, "--ready-file", ready)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	var scr screen
	go scr.read(master)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var none strings.Builder
	waitReady(t, ready, exited, &none)
	// The view is up when it has drawn its header.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(scr.String(), "TIME_WAIT"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the live view drew no header in 10 s: %q", scr.String())
		}
	}
	progs := bpfProgIDs(t, cmd.Process.Pid)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("the live view after SIGHUP: %v; the terminal shows %q", err, tail(scr.String()))
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the live view did not end on SIGHUP")
	}
	time.Sleep(50 * time.Millisecond) // the last bytes through the pty
	out := scr.String()
	enter, leave := strings.LastIndex(out, "\x1b[?1049h"), strings.LastIndex(out, "\x1b[?1049l")
	if enter < 0 || leave < enter {
		t.Errorf("the alternate screen was entered at %d and left at %d: %q", enter, leave, tail(out))
	}
	after, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if after.Lflag != before.Lflag || after.Iflag != before.Iflag || after.Oflag != before.Oflag {
		t.Errorf("terminal modes not restored: lflag %#x iflag %#x oflag %#x, were %#x %#x %#x",
			after.Lflag, after.Iflag, after.Oflag, before.Lflag, before.Iflag, before.Oflag)
	}
	for _, id := range progs {
		if programExists(id) {
			t.Errorf("BPF program %d still loaded after the live view ended", id)
		}
	}
}

func tail(s string) string { return s[max(0, len(s)-200):] }

// The terminal itself goes away (the master side closes, as sshd does): the
// kernel sends SIGHUP, and the live view ends as cleanly, with nothing left
// to restore.
func TestLiveViewHangup(t *testing.T) {
	tracertest.Require(t)
	tracertest.LockBPF(t)
	bin := buildBinary(t)
	master, slave := openPTY(t)
	ready := filepath.Join(t.TempDir(), "ready")
	cmd := exec.Command(bin, "--ready-file", ready)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	var scr screen
	go scr.read(master)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var none strings.Builder
	waitReady(t, ready, exited, &none)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(scr.String(), "TIME_WAIT"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the live view drew no header in 10 s: %q", scr.String())
		}
	}
	progs := bpfProgIDs(t, cmd.Process.Pid)
	master.Close()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("the live view after its terminal hung up: %v", err)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the live view did not end when its terminal hung up")
	}
	for _, id := range progs {
		if programExists(id) {
			t.Errorf("BPF program %d still loaded after the live view ended", id)
		}
	}
}
