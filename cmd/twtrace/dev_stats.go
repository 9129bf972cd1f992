//go:build twtracedev

package main

import (
	"encoding/json"
	"fmt"

	"github.com/twtrace/twtrace/tracer/event"

	"github.com/twtrace/twtrace/tracer/session"
)

// runStats is what a run delivered and what the kernel counted, written by
// the hidden --stats-file flag when the run ends: the benchmark checks that
// delivered plus reported lost equals what an independent count saw.
type runStats struct {
	Delivered    map[string]uint64 `json:"delivered"`     // by event kind
	LostReported uint64            `json:"lost_reported"` // sum of the lost events' counts
	Kernel       kernelStats       `json:"kernel"`
	Table        tableStats        `json:"table"`
}

type kernelStats struct {
	StateSeen       uint64                  `json:"state_seen"`
	StateFiltered   uint64                  `json:"state_filtered"`
	StateEmitted    uint64                  `json:"state_emitted"`
	StateAggregated uint64                  `json:"state_aggregated"` // counted in the kernel only (serve)
	StateRingLost   uint64                  `json:"state_ring_lost"`
	SysRingLost     uint64                  `json:"sys_ring_lost"`
	Programs        map[string]programStats `json:"programs"`
}

// programStats are the kernel's counters of one program; run_count and
// run_time_ns only move while kernel.bpf_stats_enabled is 1.
type programStats struct {
	RunCount        uint64 `json:"run_count"`
	RunTimeNS       uint64 `json:"run_time_ns"`
	RecursionMisses uint64 `json:"recursion_misses"`
}

type tableStats struct {
	Sockets  int    `json:"sockets"`
	TimeWait int    `json:"time_wait"`
	Evicted  uint64 `json:"evicted"`
}

// counter tallies what a run delivers: by kind into an array, per event,
// and into runStats's map only when it is written.
type counter struct {
	s      runStats
	byKind [256]uint64
}

func newCounter() *counter { return &counter{} }

func (c *counter) add(batch []event.Event) {
	for i := range batch {
		c.byKind[uint8(batch[i].Kind)]++
		if batch[i].Kind == event.KindLost {
			c.s.LostReported += batch[i].Lost
		}
	}
}

// write completes the tally with the kernel's counters and writes it.
func (c *counter) write(path string, sess *session.Session) error {
	ks, err := sess.Tracer().Stats()
	if err != nil {
		return err
	}
	c.s.Kernel = kernelStats{
		StateSeen: ks.StateSeen, StateFiltered: ks.StateFiltered, StateEmitted: ks.StateEmitted, StateAggregated: ks.Aggregated,
		StateRingLost: ks.Lost, SysRingLost: ks.SysLost, Programs: map[string]programStats{},
	}
	for name, p := range ks.Programs {
		c.s.Kernel.Programs[name] = programStats{
			RunCount: p.RunCount, RunTimeNS: uint64(p.RunTime.Nanoseconds()), RecursionMisses: p.RecursionMisses,
		}
	}
	c.s.Delivered = map[string]uint64{}
	for k, n := range c.byKind {
		if n > 0 {
			c.s.Delivered[event.Kind(k).String()] = n
		}
	}
	if tr := sess.Tracer(); tr.Aggregating() {
		// serve: the kernel counted the transitions and streamed a few.
		// What it could not count are the program runs it skipped; a
		// record the ring buffer had no room for is counted all the same.
		a, err := tr.Aggregates()
		if err != nil {
			return err
		}
		var n uint64
		for _, row := range a.Transitions {
			for _, v := range row {
				n += v
			}
		}
		c.s.Delivered["state"], c.s.LostReported = n, ks.RecursionMisses
	}
	ts := sess.Table().Stats()
	c.s.Table = tableStats{Sockets: ts.Sockets, TimeWait: ts.TimeWait, Evicted: ts.Evicted}
	b, err := json.MarshalIndent(c.s, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFile(path, true, append(b, '\n')); err != nil {
		return fmt.Errorf("--stats-file: %w", err)
	}
	return nil
}
