package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/twtrace/twtrace/internal/kcount"
	"github.com/twtrace/twtrace/internal/kring"
)

// The floors: the cheapest possible observers of every TCP transition, run
// as tracers of their own (a child twbench, so that their CPU and memory are
// measured as a tracer's are). "floor: count" attaches only a count-only
// tp_btf program on the tracepoint twtrace uses (internal/kcount, no
// filter); "floor: ring" reserves and submits one empty record of a state
// event's size per transition (internal/kring), drained by a reader that
// only counts. Every table shows twtrace's ratio beside them: how far it is
// from the limit, on whatever machine runs the bench.
const (
	floorCount = "floor: count"
	floorRing  = "floor: ring"
)

func floorConfig(name, kind string) config {
	return config{name: name, floor: true, start: func(ctx context.Context, dir string) (*tracerProc, error) {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		stats := filepath.Join(dir, "stats.json")
		ready := filepath.Join(dir, "ready")
		cmd := exec.CommandContext(ctx, self, "-floor", kind, "-floor-stats", stats, "-floor-ready", ready)
		cmd.Dir = dir
		p := &tracerProc{cmd: cmd, statsFile: stats}
		return p, p.startTwtrace(ready)
	}}
}

// runFloor is the child: it attaches the floor, says so in ready, and on
// SIGINT detaches and writes what it delivered in twtrace's --stats-file
// format.
func runFloor(kind, statsPath, ready string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var st twtraceStats
	st.Delivered = map[string]uint64{}
	prog := map[string]programStats{}
	switch kind {
	case "count":
		c, err := kcount.Open(0, 0)
		if err != nil {
			return err
		}
		defer c.Close()
		if err := os.WriteFile(ready, nil, 0o600); err != nil {
			return err
		}
		n0, err := c.Read()
		if err != nil {
			return err
		}
		<-ctx.Done()
		n1, err := c.Read()
		if err != nil {
			return err
		}
		misses, _ := c.Misses()
		st.Delivered["state"], st.LostReported = n1-n0, misses
		runs, ns, _ := c.Stats()
		prog["count_transition"] = programStats{RunCount: runs, RunTimeNS: ns, RecursionMisses: misses}
	case "ring":
		f, err := kring.Open()
		if err != nil {
			return err
		}
		defer f.Close()
		if err := os.WriteFile(ready, nil, 0o600); err != nil {
			return err
		}
		done := make(chan struct{})
		go func() { <-ctx.Done(); close(done) }()
		n, err := f.Drain(done, 50*time.Millisecond)
		if err != nil {
			return err
		}
		lost, err := f.Lost()
		if err != nil {
			return err
		}
		misses, _ := f.Misses()
		st.Delivered["state"], st.LostReported = n, lost+misses
		runs, ns, _ := f.Stats()
		prog["reserve_submit"] = programStats{RunCount: runs, RunTimeNS: ns, RecursionMisses: misses}
	default:
		return fmt.Errorf("-floor %q: want count or ring", kind)
	}
	st.Kernel.Programs = prog
	b, err := json.Marshal(&st)
	if err != nil {
		return err
	}
	return os.WriteFile(statsPath, b, 0o600)
}
