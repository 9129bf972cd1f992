package main

// `twtrace demo` as people run it: the real binary as root, its narration
// read through a pipe, interrupted by every signal that can end it, with
// the host compared before and after and nothing of a lesson left.

import (
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/twtrace/twtrace/internal/demo"
	"github.com/twtrace/twtrace/internal/hostcheck"
	"github.com/twtrace/twtrace/internal/tracertest"
)

// The settings lessons change inside their namespaces, and the port every
// socket of theirs is on or connected to there: the host's must not move.
var (
	demoSysctls = []string{"ipv4/ip_local_port_range", "ipv4/tcp_tw_reuse", "ipv4/tcp_migrate_req"}
	demoPorts   = func(local, remote uint16) bool { return local == 9000 || remote == 9000 }
)

func TestDemoUsage(t *testing.T) {
	code, out, _ := runCLI("demo")
	if code != 0 || strings.Count(out, "\n") != 1+len(demo.Lessons()) {
		t.Errorf("demo: exit %d\n%s", code, out)
	}
	for _, l := range demo.Lessons() {
		if !strings.Contains(out, "  "+l.Name+" ") || !strings.Contains(out, l.Summary) {
			t.Errorf("the list lacks %s: %s", l.Name, out)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"demo", "restart"}, `no lesson "restart": want one of restart-too-fast, old-version-without-reuseaddr`},
		{[]string{"demo", "--all", "port-held"}, "--all runs every lesson"},
		{[]string{"demo", "port-held", "who-closes-first"}, "demo takes one LESSON, got 2"},
		{[]string{"demo", "--step"}, "go with a LESSON or --all"},
		{[]string{"demo", "--skip-wait"}, "go with a LESSON or --all"},
	} {
		code, _, stderr := runCLI(tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("twtrace %v: exit %d, %q; want exit 2 saying %q", tc.args, code, stderr, tc.want)
		}
	}
}

func TestDemoBinary(t *testing.T) {
	tracertest.Require(t)
	bin := buildBinary(t)
	t.Run("all", func(t *testing.T) { demoAll(t, bin) })
	t.Run("step", func(t *testing.T) { demoStep(t, bin) })
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) { demoSignal(t, bin, sig) })
	}
	t.Run("live-q", func(t *testing.T) { demoLive(t, bin, "q") })
	t.Run("live-SIGTERM", func(t *testing.T) { demoLive(t, bin, "SIGTERM") })
}

// On a terminal the lesson runs in the live view. With --step it waits for
// space at its second step; q there (or SIGTERM) ends it: the terminal is
// given back (the alternate screen left), exit 0, and nothing is left.
func demoLive(t *testing.T, bin, how string) {
	before := takeHost(t)
	term, tty := tracertest.PTY(t, 160, 40)
	cmd := exec.Command(bin, "demo", "port-held", "--step")
	cmd.Stdin, cmd.Stdout = tty, tty
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	d := &demoRun{t: t, cmd: cmd}
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(ansi.Strip(term.Output()), "space: next step") || len(d.agents) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the live view never waited for space at a step; the screen:\n%s", ansi.Strip(term.Output()))
		}
		for _, c := range hostcheck.Children(cmd.Process.Pid) {
			if !containsInt(d.agents, c) {
				d.agents = append(d.agents, c)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.netns = netnsOf(t, d.agents[0])
	if how == "q" {
		term.Type("q")
	} else {
		cmd.Process.Signal(syscall.SIGTERM)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after %s: %v; stderr %q", how, err, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("twtrace demo did not end within 5 s of %s", how)
	}
	if !strings.Contains(stderr.String(), "interrupted; the lesson's namespace and processes are gone") {
		t.Errorf("stderr after %s: %q", how, stderr.String())
	}
	if !strings.Contains(term.Output(), "\x1b[?1049l") {
		t.Errorf("the terminal was not given back: no alternate screen left after %s", how)
	}
	d.checkNothingLeft(before)
}

// netnsOf is the network namespace inode of a process.
func netnsOf(t *testing.T, pid int) uint32 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st); err != nil {
		t.Fatal(err)
	}
	return uint32(st.Ino)
}

// demoRun is the binary running a lesson, its narration read as it comes.
type demoRun struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  <-chan string
	seen   []string
	stderr bytes.Buffer
	netns  uint32
	agents []int // the processes of the lesson seen while it ran
}

func startDemo(t *testing.T, bin string, args ...string) *demoRun {
	t.Helper()
	d := &demoRun{t: t, cmd: exec.Command(bin, append([]string{"demo"}, args...)...)}
	d.cmd.Stderr = &d.stderr
	var err error
	if d.stdin, err = d.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.cmd.Process.Kill(); d.cmd.Wait() })
	d.lines = lineReader(out)
	return d
}

var inodeLine = regexp.MustCompile(`private network namespace \(inode (\d+)\)`)

// waitFor reads the narration until a line contains s, and notes the
// lesson's namespace and its processes on the way.
func (d *demoRun) waitFor(s string, within time.Duration) {
	d.t.Helper()
	timeout := time.After(within)
	for {
		select {
		case l, ok := <-d.lines:
			if !ok {
				d.t.Fatalf("the narration ended before %q (exit: %v)\n%s\nstderr: %s", s, d.cmd.Wait(),
					strings.Join(d.seen, "\n"), d.stderr.String())
			}
			d.seen = append(d.seen, l)
			if m := inodeLine.FindStringSubmatch(l); m != nil {
				n, _ := strconv.ParseUint(m[1], 10, 32)
				d.netns = uint32(n)
			}
			for _, c := range hostcheck.Children(d.cmd.Process.Pid) {
				if !containsInt(d.agents, c) {
					d.agents = append(d.agents, c)
				}
			}
			if strings.Contains(l, s) {
				return
			}
		case <-timeout:
			d.t.Fatalf("no %q within %v; the narration so far:\n%s", s, within, strings.Join(d.seen, "\n"))
		}
	}
}

func containsInt(s []int, n int) bool {
	for _, x := range s {
		if x == n {
			return true
		}
	}
	return false
}

// wait waits for the exit and returns the exit status, and the rest of the
// narration.
func (d *demoRun) wait(within time.Duration) (*exec.ExitError, string) {
	d.t.Helper()
	var rest []string
	timeout := time.After(within)
	for {
		select {
		case l, ok := <-d.lines:
			if ok {
				rest = append(rest, l)
				continue
			}
			err := d.cmd.Wait()
			ee, _ := err.(*exec.ExitError)
			if err != nil && ee == nil {
				d.t.Fatal(err)
			}
			return ee, strings.Join(append(d.seen, rest...), "\n")
		case <-timeout:
			d.t.Fatalf("twtrace demo did not end within %v", within)
		}
	}
}

// checkNothingLeft: the processes of the lesson are gone, nothing holds its
// namespace, and the host is as before.
func (d *demoRun) checkNothingLeft(before hostcheck.State) {
	d.t.Helper()
	if len(d.agents) == 0 || d.netns == 0 {
		d.t.Fatalf("saw no process (%v) or namespace (%d) of the lesson", d.agents, d.netns)
	}
	deadline := time.Now().Add(2 * time.Second) // a killed child is reaped by init
	for len(hostcheck.Alive(d.agents)) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if alive := hostcheck.Alive(d.agents); len(alive) > 0 {
		d.t.Errorf("processes of the lesson still run: %v", alive)
	}
	if h := hostcheck.NetNSGone(d.netns, append([]int{d.cmd.Process.Pid}, d.agents...)); len(h) > 0 {
		d.t.Errorf("the lesson's namespace %d is still held: %v", d.netns, h)
	}
	after, err := hostcheck.Take(demoSysctls, demoPorts)
	if err != nil {
		d.t.Fatal(err)
	}
	for _, diff := range before.Diff(after) {
		d.t.Errorf("the host changed: %s", diff)
	}
}

func takeHost(t *testing.T) hostcheck.State {
	t.Helper()
	s, err := hostcheck.Take(demoSysctls, demoPorts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Every lesson in a row, as CI and a recording run them.
func demoAll(t *testing.T, bin string) {
	before := takeHost(t)
	d := startDemo(t, bin, "--all", "--text", "--skip-wait")
	d.waitFor("twtrace demo zero-downtime-restart:", 60*time.Second)
	ee, out := d.wait(30 * time.Second)
	if ee != nil {
		t.Fatalf("exit %v\n%s\nstderr: %s", ee, out, d.stderr.String())
	}
	for _, l := range demo.Lessons() {
		if !strings.Contains(out, "twtrace demo "+l.Name+": "+l.Summary+"\n") || !strings.Contains(out, "What it shows: "+l.Moral) {
			t.Errorf("the narration lacks lesson %s from its title to its end", l.Name)
		}
	}
	if n := strings.Count(out, "private network namespace (inode"); n != len(demo.Lessons()) {
		t.Errorf("%d namespaces for %d lessons", n, len(demo.Lessons()))
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("colour codes in a narration to a pipe")
	}
	d.checkNothingLeft(before)
}

// With --step, nothing happens until a line comes on stdin.
func demoStep(t *testing.T, bin string) {
	before := takeHost(t)
	d := startDemo(t, bin, "port-held", "--text", "--step")
	d.waitFor("1. A server listens on", 10*time.Second)
	d.waitFor("CLOSE -> LISTEN", 5*time.Second)
	select {
	case l := <-d.lines:
		t.Fatalf("the lesson went on without a key: %q", l)
	case <-time.After(700 * time.Millisecond):
	}
	for range 4 {
		io.WriteString(d.stdin, "\n")
	}
	d.waitFor("4. The old server stops.", 10*time.Second)
	io.WriteString(d.stdin, "\n")
	if ee, out := d.wait(20 * time.Second); ee != nil {
		t.Fatalf("exit %v\n%s", ee, out)
	}
	d.checkNothingLeft(before)
}

// A signal in the middle of a lesson (here, during its 60 s countdown) ends
// it within a second or two, and leaves nothing: SIGINT, SIGTERM and SIGHUP
// (a closed terminal) in order, exit 0; SIGKILL at once, and the kernel
// kills the lesson's processes (their parent death signal) and frees the
// namespace.
func demoSignal(t *testing.T, bin string, sig syscall.Signal) {
	before := takeHost(t)
	d := startDemo(t, bin, "old-version-without-reuseaddr", "--text")
	d.waitFor("TIME_WAIT ends in", 20*time.Second)
	if len(d.agents) == 0 {
		t.Fatal("no process of the lesson seen while it ran")
	}
	sent := time.Now()
	if err := d.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	ee, out := d.wait(10 * time.Second)
	took := time.Since(sent)
	switch {
	case sig == syscall.SIGKILL:
		if ee == nil || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("after SIGKILL: %v", ee)
		}
	case ee != nil:
		t.Errorf("exit %v after %v, want 0\n%s\nstderr: %s", ee, sig, out, d.stderr.String())
	case !strings.Contains(d.stderr.String(), "interrupted; the lesson's namespace and processes are gone"):
		t.Errorf("stderr after %v: %q", sig, d.stderr.String())
	}
	if took > 3*time.Second {
		t.Errorf("%v took %v to end the lesson", sig, took)
	}
	d.checkNothingLeft(before)
	t.Log(fmt.Sprintf("%v: ended in %v; agents %v, namespace %d", sig, took.Round(time.Millisecond), d.agents, d.netns))
}
