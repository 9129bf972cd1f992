package main

// Least privilege, as an administrator grants it: the real binary run as
// nobody with exactly a set of capabilities (setpriv), a real EADDRINUSE on
// loopback. CAP_BPF and CAP_PERFMON are enough for every event; each one
// removed ends twtrace with exit code 3 and the sentence naming it; the
// optional ones add what their sentence says is missing.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twtrace/twtrace/internal/tracertest"
)

const (
	withoutOwners = "twtrace: continuing without the owners of other users' sockets older than twtrace: " +
		"reading another user's /proc/PID/fd needs CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH\n"
	withoutNetNS = "twtrace: continuing without checking other network namespaces' TIME_WAIT sockets against the kernel " +
		"(they end by their timer): entering a namespace needs CAP_SYS_ADMIN\n"
	setcap = "`sudo setcap cap_bpf,cap_perfmon,cap_sys_ptrace,cap_dac_read_search+ep $(command -v twtrace)`"
)

func TestCapabilities(t *testing.T) {
	tracertest.Require(t)
	tracertest.LockBPF(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		tracertest.Unavailable(t, err)
	}
	dir := tracertest.PublicDir(t)
	bin := filepath.Join(dir, "twtrace")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		caps   string
		stderr string // all of it; exit 3 when it is a FeatureError's sentence
	}{
		{"bpf,perfmon", withoutOwners + withoutNetNS},
		{"bpf,perfmon,sys_ptrace,dac_read_search", withoutNetNS},
		{"bpf,perfmon,sys_ptrace", withoutOwners + withoutNetNS},
		{"bpf,perfmon,dac_read_search", withoutOwners + withoutNetNS},
		{"perfmon,sys_ptrace,dac_read_search",
			"twtrace: twtrace needs CAP_BPF, which this process lacks: run it as root (sudo), or grant it with " + setcap + "\n"},
		{"bpf,sys_ptrace,dac_read_search",
			"twtrace: twtrace needs CAP_PERFMON, which this process lacks: run it as root (sudo), or grant it with " + setcap + "\n"},
		{"", "twtrace: twtrace needs CAP_BPF and CAP_PERFMON, which this process lacks: run it as root (sudo), or grant them with " + setcap + "\n"},
	} {
		t.Run(strings.ReplaceAll(tc.caps, ",", "+"), func(t *testing.T) { testCaps(t, bin, dir, tc.caps, tc.stderr) })
	}
}

func testCaps(t *testing.T, bin, dir, caps, wantStderr string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	port := freePort(t)
	ready := filepath.Join(dir, fmt.Sprintf("ready-%d", port))
	set := "-all"
	for _, c := range strings.Split(caps, ",") {
		if c != "" {
			set += ",+" + c
		}
	}
	cmd := exec.CommandContext(ctx, "setpriv", "--reuid", strconv.Itoa(tracertest.NobodyUID),
		"--regid", strconv.Itoa(tracertest.NobodyGID), "--clear-groups",
		"--inh-caps", set, "--ambient-caps", set, "--bounding-set", set, "--",
		bin, "trace", "--json", "--port", strconv.Itoa(port), "--ready-file", ready)
	cmd.Dir = dir
	// A pipe of our own: Wait would close the one of StdoutPipe under the reader.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = w, &stderr
	err = cmd.Start()
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	lines := lineReader(r)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	if strings.Contains(wantStderr, "which this process lacks") {
		<-exited
		if code := cmd.ProcessState.ExitCode(); code != exitFeature || stderr.String() != wantStderr {
			t.Errorf("with %q: exit %d, stderr %q; want exit 3 and %q", caps, code, stderr.String(), wantStderr)
		}
		return
	}
	waitReady(t, ready, exited, &stderr)
	progs := bpfProgIDs(t, cmd.Process.Pid)

	// A TIME_WAIT on the port, and another process refused beside it.
	serverClosesFirst(t, ctx, port, 1)
	var seen []string
	waitLine(t, lines, &seen, "the TIME_WAIT, with its socket's uid", func(m map[string]any) bool {
		return m["kind"] == "timewait" && m["sport"] == float64(port) && m["owner_uid"] == float64(0)
	})
	child := exec.Command(os.Args[0])
	child.Env = append(os.Environ(), bindHelperEnv+"="+strconv.Itoa(port))
	out, err := child.Output()
	if err != nil || !strings.Contains(string(out), "address already in use") {
		t.Fatalf("child bind: %q, %v", out, err)
	}
	waitLine(t, lines, &seen, "the child's EADDRINUSE", func(m map[string]any) bool {
		return m["kind"] == "bind" && m["errno"] == "EADDRINUSE" && m["pid"] == float64(child.Process.Pid) &&
			m["port"] == float64(port) && m["uid"] == float64(0)
	})
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for range lines {
	}
	if err := <-exited; err != nil || stderr.String() != wantStderr {
		t.Errorf("with %q: %v, stderr %q; want exit 0 and %q", caps, err, stderr.String(), wantStderr)
	}
	for _, id := range progs {
		if programExists(id) {
			t.Errorf("BPF program %d still loaded after twtrace exited", id)
		}
	}
}
