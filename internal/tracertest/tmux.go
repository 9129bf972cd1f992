package tracertest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Tmux is a program running in a tmux window, on a tmux server of the
// test's own: what a person at a terminal would see, rendered by a real
// terminal emulator (capture-pane), and the keys they would press
// (send-keys). The server ends with the test.
type Tmux struct {
	t      testing.TB
	sock   string
	status string // the file the program's exit status is written to
}

// StartTmux runs argv in a w x h tmux window, with env added to the
// environment. Without tmux the test fails when privileged tests are
// required (CI installs it: make test-deps), and skips otherwise.
func StartTmux(t testing.TB, w, h int, env []string, argv ...string) *Tmux {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		if Required() {
			t.Fatalf("tmux is not installed (make test-deps installs it): %v", err)
		}
		t.Skip("tmux is not installed: make test-deps installs it")
	}
	dir := t.TempDir()
	x := &Tmux{t: t, sock: filepath.Join(dir, "tmux.sock"), status: filepath.Join(dir, "status")}
	args := []string{"new-session", "-d", "-x", strconv.Itoa(w), "-y", strconv.Itoa(h)}
	for _, e := range env {
		args = append(args, "-e", e)
	}
	// The shell waits for the program and writes its exit status (tmux's
	// own pane_dead_status needs SIGCHLD, which the test's parent may
	// block); remain-on-exit keeps the last screen readable.
	script := strings.Join(quoteAll(argv), " ") + `; echo $? > ` + quoteAll([]string{x.status})[0]
	args = append(args, "sh -c "+quoteAll([]string{script})[0], ";", "set-option", "-wg", "remain-on-exit", "on")
	if out, err := x.cmd(args...).CombinedOutput(); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = x.cmd("kill-server").Run() })
	return x
}

func quoteAll(argv []string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return out
}

func (x *Tmux) cmd(args ...string) *exec.Cmd {
	c := exec.Command("tmux", append([]string{"-S", x.sock, "-f", os.DevNull}, args...)...)
	c.Env = append(os.Environ(), "TERM=xterm-256color")
	return c
}

// Keys presses keys, as tmux send-keys names them: "q", "Space", "Enter",
// "Escape", "]" (each argument one key, or a string typed as is with -l).
func (x *Tmux) Keys(keys ...string) {
	x.t.Helper()
	if out, err := x.cmd(append([]string{"send-keys", "-t", "0"}, keys...)...).CombinedOutput(); err != nil {
		x.t.Fatalf("tmux send-keys %q: %v\n%s", keys, err, out)
	}
}

// Type types text, literally.
func (x *Tmux) Type(text string) {
	x.t.Helper()
	if out, err := x.cmd("send-keys", "-t", "0", "-l", text).CombinedOutput(); err != nil {
		x.t.Fatalf("tmux send-keys -l %q: %v\n%s", text, err, out)
	}
}

// Screen is the window's screen as text, one line per row.
func (x *Tmux) Screen() string {
	x.t.Helper()
	out, err := x.cmd("capture-pane", "-p", "-t", "0").Output()
	if err != nil {
		x.t.Fatalf("tmux capture-pane: %v", err)
	}
	return string(out)
}

// WaitFor waits up to timeout until the screen shows every string, and
// returns it; it fails the test with the last screen otherwise.
func (x *Tmux) WaitFor(timeout time.Duration, want ...string) string {
	x.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := x.Screen()
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(s, w)
		}
		if ok {
			return s
		}
		if dead, status := x.dead(); dead {
			x.t.Fatalf("the program exited (status %d) before the screen showed %q; last screen:\n%s", status, want, s)
		}
		if time.Now().After(deadline) {
			x.t.Fatalf("the screen never showed %q in %v; last screen:\n%s", want, timeout, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (x *Tmux) dead() (bool, int) {
	b, err := os.ReadFile(x.status)
	if err != nil {
		return false, 0
	}
	var status int
	if _, err := fmt.Sscan(string(b), &status); err != nil {
		return false, 0 // being written
	}
	return true, status
}

// PanePID is the pid of the shell that runs the program (its parent).
func (x *Tmux) PanePID() int {
	x.t.Helper()
	out, err := x.cmd("display-message", "-p", "-t", "0", "#{pane_pid}").Output()
	if err != nil {
		x.t.Fatalf("tmux display-message: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		x.t.Fatalf("tmux pane_pid %q: %v", out, err)
	}
	return pid
}

// Exit waits up to timeout for the program to end and returns its exit
// status; it fails the test if it does not end.
func (x *Tmux) Exit(timeout time.Duration) int {
	x.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if dead, status := x.dead(); dead {
			return status
		}
		if time.Now().After(deadline) {
			x.t.Fatalf("the program did not exit in %v; its screen:\n%s", timeout, x.Screen())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
