package metrics

import (
	"math"
	"math/bits"
	"time"
)

// Log2Slots is how many power-of-two slots a duration histogram keeps:
// slot s counts durations d with 2^(s-1) < d ≤ 2^s nanoseconds (slot 0:
// d = 0, or 1 ns). The kernel-side histogram uses the same slots, so both
// sources export the same buckets.
const Log2Slots = 64

// Log2Slot is the slot of a duration in nanoseconds.
func Log2Slot(ns uint64) int {
	if ns == 0 {
		return 0
	}
	return min(bits.Len64(ns-1), Log2Slots-1)
}

// Exported buckets: upper bounds 2^firstBucketLog2 ns (about 1 µs) to
// 2^lastBucketLog2 ns (about 73 min), a factor of four apart, then +Inf.
const (
	firstBucketLog2 = 10
	lastBucketLog2  = 42
	bucketStep      = 2
)

// bucketBounds are the exported upper bounds in seconds.
var bucketBounds = func() []float64 {
	var b []float64
	for s := firstBucketLog2; s <= lastBucketLog2; s += bucketStep {
		b = append(b, math.Ldexp(1, s)/1e9)
	}
	return b
}()

// durationHist counts durations in Log2Slots slots, and their exact sum in
// nanoseconds as 128 bits (a million day-long connections overflow 64).
type durationHist struct {
	slots        [Log2Slots]uint64
	sumHi, sumLo uint64
	count        uint64
}

func (h *durationHist) add(d time.Duration) {
	ns := uint64(max(d, 0))
	h.slots[Log2Slot(ns)]++
	h.count++
	var carry uint64
	h.sumLo, carry = bits.Add64(h.sumLo, ns, 0)
	h.sumHi += carry
}

// merge adds another histogram's counts (the kernel's, per CPU).
func (h *durationHist) merge(slots *[Log2Slots]uint64, sumHi, sumLo uint64) {
	for i, n := range slots {
		h.slots[i] += n
		h.count += n
	}
	var carry uint64
	h.sumLo, carry = bits.Add64(h.sumLo, sumLo, 0)
	h.sumHi += sumHi + carry
}

// buckets returns the cumulative counts by exported upper bound and the
// sum in seconds, as prometheus.NewConstHistogram takes them.
func (h *durationHist) buckets() (map[float64]uint64, float64) {
	out := make(map[float64]uint64, len(bucketBounds))
	var cum uint64
	next := 0
	for i, le := range bucketBounds {
		bound := firstBucketLog2 + i*bucketStep
		for ; next <= bound; next++ {
			cum += h.slots[next]
		}
		out[le] = cum
	}
	sum := (float64(h.sumHi)*math.Ldexp(1, 64) + float64(h.sumLo)) / 1e9
	return out, sum
}
