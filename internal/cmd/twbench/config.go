package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// A config is one way of tracing the churn (or not tracing it).
type config struct {
	name string
	// floor: one of the floors (floor.go), not a tracer of its own.
	floor bool
	// start launches the tracer and returns once it is attached; nil for
	// the untraced run.
	start func(ctx context.Context, dir string) (*tracerProc, error)
}

// bpftraceScript prints one line per TCP transition: the reference most
// users know, on the same tracepoint.
const bpftraceScript = `tracepoint:sock:inet_sock_set_state /args->protocol == 6/ {
  printf("%d %s %d %d %d %d\n", pid, comm, args->sport, args->dport, args->oldstate, args->newstate);
}`

func configurations(o *options) []config {
	cs := []config{
		{name: "untraced"},
		floorConfig(floorCount, "count"),
		floorConfig(floorRing, "ring"),
		twtraceConfig(o, "trace --json", "trace", "--json"),
		twtraceConfig(o, "record .zst", "record", "-o", "capture.jsonl.zst"),
		twtraceConfig(o, "tui (headless)", "--headless"),
		serveConfig(o, "serve"),                          // the kernel aggregates
		serveConfig(o, "serve --by-netns", "--by-netns"), // every event to user space
	}
	if bpftraceAvailable() {
		cs = append(cs, config{name: "bpftrace printf", start: startBpftrace})
	}
	return keep(o, cs)
}

// keep returns the configurations --only selects; the untraced run and the
// floors are always kept, since every ratio is read against them.
func keep(o *options, cs []config) []config {
	var kept []config
	for _, c := range cs {
		if c.start == nil || c.floor || o.only == "" || slices.ContainsFunc(strings.Split(o.only, ","), func(s string) bool {
			return strings.Contains(c.name, s)
		}) {
			kept = append(kept, c)
		}
	}
	return kept
}

// serveConfig runs `twtrace serve` on a free loopback port and has runOne
// scrape it during the run, as a Prometheus would.
func serveConfig(o *options, name string, args ...string) config {
	c := config{name: name, start: func(ctx context.Context, dir string) (*tracerProc, error) {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		addr := l.Addr().String()
		l.Close()
		p, err := twtraceConfig(o, name, append([]string{"serve", "--metrics-addr", addr}, args...)...).start(ctx, dir)
		if p != nil {
			p.scrapeURL = "http://" + addr + "/metrics"
		}
		return p, err
	}}
	return c
}

// twtraceConfig runs twtrace with args (a file name in them is taken in the
// run's own directory), plus the hidden flags that tell when it is attached
// and what it delivered.
func twtraceConfig(o *options, name string, args ...string) config {
	return config{name: name, start: func(ctx context.Context, dir string) (*tracerProc, error) {
		stats := filepath.Join(dir, "stats.json")
		ready := filepath.Join(dir, "ready")
		full := append([]string{}, args...)
		full = append(full, "--stats-file", stats, "--ready-file", ready)
		cmd := exec.CommandContext(ctx, o.twtrace, full...)
		cmd.Dir = dir
		p := &tracerProc{cmd: cmd, statsFile: stats}
		return p, p.startTwtrace(ready)
	}}
}

// tracerProc is a running tracer.
type tracerProc struct {
	cmd       *exec.Cmd
	scrapeURL string        // serve: its /metrics
	statsFile string        // twtrace's --stats-file; "" for bpftrace
	lines     *atomic.Int64 // bpftrace: lines printed
	done      chan struct{} // bpftrace: its output was read to the end
	stderr    strings.Builder
}

func (p *tracerProc) startTwtrace(ready string) error {
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	p.cmd.Stdout = devnull
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		devnull.Close()
		return err
	}
	devnull.Close()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			p.kill()
			return fmt.Errorf("%s not ready after 30 s: %s", p.cmd.Path, p.stderr.String())
		}
	}
}

func startBpftrace(ctx context.Context, dir string) (*tracerProc, error) {
	// bpftrace finds tracepoints in tracefs; where the host has none
	// mounted, it gets one in a private mount namespace (nothing changes
	// for the rest of the system).
	cmd := exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing; exec bpftrace -e "$0"`,
		bpftraceScript)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p := &tracerProc{cmd: cmd, lines: new(atomic.Int64), done: make(chan struct{})}
	cmd.Stderr = &p.stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	attached := make(chan struct{})
	go func() {
		defer close(p.done)
		r := bufio.NewReaderSize(stdout, 1<<20)
		first := true
		for {
			line, err := r.ReadSlice('\n')
			if first && strings.HasPrefix(string(line), "Attaching") {
				first = false
				close(attached)
				continue
			}
			// An event line starts with the pid; bpftrace ends with blank lines.
			if len(line) > 1 && line[len(line)-1] == '\n' && line[0] >= '0' && line[0] <= '9' {
				p.lines.Add(1)
			}
			if err == io.EOF || (err != nil && err != bufio.ErrBufferFull) {
				return
			}
		}
	}()
	select {
	case <-attached:
		time.Sleep(500 * time.Millisecond) // "Attaching" is printed just before the attach
		return p, nil
	case <-time.After(30 * time.Second):
		p.kill()
		return nil, fmt.Errorf("bpftrace did not attach within 30 s: %s", p.stderr.String())
	}
}

// procCPU returns the process's user+system CPU time so far, from /proc.
func (p *tracerProc) procCPU() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised comm: state is field 3; utime 14, stime 15.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	var ut, st int64
	fmt.Sscan(f[11], &ut)
	fmt.Sscan(f[12], &st)
	return time.Duration(ut+st) * time.Second / clockTicks
}

const clockTicks = 100 // USER_HZ

// stop ends the tracer with SIGINT, as a user would, and returns its
// resource use.
func (p *tracerProc) stop() (*syscall.Rusage, error) {
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	errc := make(chan error, 1)
	go func() { errc <- p.cmd.Wait() }()
	select {
	case err := <-errc:
		if p.done != nil {
			<-p.done
		}
		if err != nil && !isSignalExit(err) {
			return nil, fmt.Errorf("%s: %v: %s", p.cmd.Path, err, p.stderr.String())
		}
	case <-time.After(30 * time.Second):
		p.kill()
		return nil, fmt.Errorf("%s did not stop within 30 s of SIGINT", p.cmd.Path)
	}
	ru, _ := p.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return ru, nil
}

func isSignalExit(err error) bool {
	ee, ok := err.(*exec.ExitError)
	if !ok {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGINT
}

func (p *tracerProc) kill() {
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

// twtraceStats is the --stats-file of a twtrace run.
type twtraceStats struct {
	Delivered    map[string]uint64 `json:"delivered"`
	LostReported uint64            `json:"lost_reported"`
	Kernel       struct {
		StateSeen     uint64                  `json:"state_seen"`
		StateEmitted  uint64                  `json:"state_emitted"`
		StateRingLost uint64                  `json:"state_ring_lost"`
		SysRingLost   uint64                  `json:"sys_ring_lost"`
		Programs      map[string]programStats `json:"programs"`
	} `json:"kernel"`
}

// programStats is one BPF program's kernel statistics in a --stats-file.
type programStats struct {
	RunCount        uint64 `json:"run_count"`
	RunTimeNS       uint64 `json:"run_time_ns"`
	RecursionMisses uint64 `json:"recursion_misses"`
}

func readStats(path string) (*twtraceStats, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s twtraceStats
	return &s, json.Unmarshal(b, &s)
}
