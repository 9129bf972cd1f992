package main

import "sync/atomic"

// pacer hands out start times for a fixed connection rate. Every worker
// takes tickets from one counter, and ticket k starts at start + k/rate: the
// schedule is absolute, so rounding and late wake-ups never accumulate into
// drift, and connections are spread evenly however many workers there are.
// A worker that falls behind starts its overdue tickets at once, which keeps
// the average rate; lateness is reported, never hidden.
type pacer struct {
	start int64 // ns on the run's clock
	rate  uint64
	next  atomic.Uint64
}

func newPacer(start int64, rate int) *pacer {
	return &pacer{start: start, rate: uint64(rate)}
}

// take returns the next ticket and the time it is due.
func (p *pacer) take() (ticket uint64, due int64) {
	k := p.next.Add(1) - 1
	return k, p.due(k)
}

// due is when ticket k starts. Split into whole seconds and a remainder so
// that k*1e9 cannot overflow however long the run.
func (p *pacer) due(k uint64) int64 {
	sec, rem := k/p.rate, k%p.rate
	return p.start + int64(sec)*1e9 + int64(rem*1e9/p.rate)
}
