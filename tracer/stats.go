package tracer

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// Indexes of the kernel's per-CPU counters, generated from enum tw_stat in
// headers/twtrace.h: reordering the enum cannot mislabel a counter.
const (
	statStateSeen     = sockstateTwStatTW_STAT_STATE_SEEN
	statStateFiltered = sockstateTwStatTW_STAT_STATE_FILTERED
	statStateEmitted  = sockstateTwStatTW_STAT_STATE_EMITTED
	statSysSeen       = sockstateTwStatTW_STAT_SYS_SEEN
	statSysFiltered   = sockstateTwStatTW_STAT_SYS_FILTERED
	statSysEmitted    = sockstateTwStatTW_STAT_SYS_EMITTED
	statLost          = sockstateTwStatTW_STAT_LOST
	statSockMapFull   = sockstateTwStatTW_STAT_SOCKMAP_FULL
	statOtherProto    = sockstateTwStatTW_STAT_OTHER_PROTO
	statInflightFull  = sockstateTwStatTW_STAT_INFLIGHT_FULL
	statSysLost       = sockstateTwStatTW_STAT_SYS_LOST
	statRescued       = sockstateTwStatTW_STAT_RESCUED
	statAggregated    = sockstateTwStatTW_STAT_AGGREGATED
	statMax           = sockstateTwStatTW_STAT_MAX
)

// The slots of the counters map (enum tw_slot).
const (
	slotMain   = uint32(sockstateTwSlotTW_SLOT_MAIN)
	slotNested = uint32(sockstateTwSlotTW_SLOT_NESTED)
)

// KernelStats are the counters the BPF programs keep, summed over CPUs, and
// the kernel's own per-program counters.
type KernelStats struct {
	StateSeen     uint64 // TCP transitions the state program ran for
	StateFiltered uint64 // ... that the filters dropped in the kernel
	StateEmitted  uint64 // ... that were written to the ring buffer
	SysSeen       uint64 // bind/connect/listen results on TCP sockets
	SysFiltered   uint64
	SysEmitted    uint64
	Lost          uint64 // state events with no room in the ring buffer
	SysLost       uint64 // bind/connect/listen events with no room in the ring buffer
	SockMapFull   uint64 // sockets not tracked: socket storage not allocated
	OtherProto    uint64 // SCTP/MPTCP transitions, counted not traced
	InflightFull  uint64 // syscalls not tracked: in-flight map full
	Rescued       uint64 // transitions the state program missed and the nested one handled
	Aggregated    uint64 // transitions counted in the kernel's aggregates only (Config.Aggregate)

	// RecursionMisses are the runs the kernel skipped because the program
	// was already running on the CPU, less those the nested state program
	// handled: each one is a lost event.
	RecursionMisses uint64
	// Programs holds each attached program's counters.
	Programs map[string]ProgramStats
}

// ProgramStats are the kernel's counters for one program. RunCount and
// RunTime are only counted while kernel.bpf_stats_enabled is 1.
type ProgramStats struct {
	RunCount        uint64
	RunTime         time.Duration
	RecursionMisses uint64
}

// add sums one CPU's counters into s, each by its index in enum tw_stat.
func (s *KernelStats) add(c *sockstateTwCounters) {
	fields := [statMax]*uint64{
		statStateSeen: &s.StateSeen, statStateFiltered: &s.StateFiltered, statStateEmitted: &s.StateEmitted,
		statSysSeen: &s.SysSeen, statSysFiltered: &s.SysFiltered, statSysEmitted: &s.SysEmitted,
		statLost: &s.Lost, statSockMapFull: &s.SockMapFull, statOtherProto: &s.OtherProto,
		statInflightFull: &s.InflightFull, statSysLost: &s.SysLost, statRescued: &s.Rescued,
		statAggregated: &s.Aggregated,
	}
	for i, f := range fields {
		*f += c.V[i]
	}
}

// Stats reads the counters: those of the programs first, then the kernel's
// misses, so that every rescue read has its miss read too.
func (t *Tracer) Stats() (KernelStats, error) {
	var s KernelStats
	var perCPU []sockstateTwCounters
	for _, slot := range []uint32{slotMain, slotNested} {
		if err := t.state.Stats.Lookup(slot, &perCPU); err != nil {
			return s, fmt.Errorf("read counters: %w", err)
		}
		for _, c := range perCPU {
			s.add(&c)
		}
	}
	var misses uint64
	s.Programs = make(map[string]ProgramStats, len(t.progs))
	for name, p := range t.progs {
		ps, err := p.Stats()
		if err != nil {
			return s, fmt.Errorf("read stats of %s: %w", name, err)
		}
		s.Programs[name] = ProgramStats{
			RunCount:        ps.RunCount,
			RunTime:         ps.Runtime,
			RecursionMisses: ps.RecursionMisses,
		}
		if name != nestedProgram { // its misses: the main program ran
			misses += ps.RecursionMisses
		}
	}
	if misses > s.Rescued {
		s.RecursionMisses = misses - s.Rescued
	}
	return s, nil
}

func monotonicNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}
