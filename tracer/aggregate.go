package tracer

import (
	"fmt"
	"math/bits"
)

// Sizes of the kernel's aggregates, generated from enum tw_limit.
const (
	// AggStates sizes the per-state arrays: TCP states are 1..13.
	AggStates = int(sockstateTwLimitTW_STATES)
	// AggSlots is the number of slots of a time-in-state histogram: slot s
	// counts times of more than 2^(s-1) and at most 2^s nanoseconds.
	AggSlots = int(sockstateTwLimitTW_LOG2SLOTS)
)

// Aggregates are the kernel's counts of transitions and of the time spent
// in each state (Config.Aggregate), summed over CPUs and programs.
type Aggregates struct {
	Transitions [AggStates][AggStates]uint64 // [old][new]
	Durations   [AggStates]StateTimes        // by old state
}

// StateTimes is a histogram of the time spent in one state.
type StateTimes struct {
	Slots        [AggSlots]uint64
	SumHi, SumLo uint64 // the sum of the times in nanoseconds, 128 bits
}

// Aggregating reports whether the tracer was opened with Config.Aggregate:
// the stream then carries only some of the transitions.
func (t *Tracer) Aggregating() bool { return t.cfg.Aggregate }

// Aggregates reads the kernel's aggregates. They are zero unless the
// tracer was opened with Config.Aggregate.
func (t *Tracer) Aggregates() (*Aggregates, error) {
	a := &Aggregates{}
	var perCPU []sockstateTwStateAgg
	for _, slot := range []uint32{slotMain, slotNested} {
		for old := range AggStates {
			if err := t.state.Aggs.Lookup(slot*uint32(AggStates)+uint32(old), &perCPU); err != nil {
				return nil, fmt.Errorf("read the aggregates: %w", err)
			}
			for i := range perCPU {
				c, d := &perCPU[i], &a.Durations[old]
				for to, n := range c.To {
					a.Transitions[old][to] += n
				}
				for s, n := range c.Slots {
					d.Slots[s] += n
				}
				var carry uint64
				d.SumLo, carry = bits.Add64(d.SumLo, c.SumLo, 0)
				d.SumHi += c.SumHi + carry
			}
		}
	}
	return a, nil
}
