package main

import (
	"math/bits"
	"sync"
	"testing"
)

func TestPacerSchedule(t *testing.T) {
	p := newPacer(1000, 5000) // a start every 200 µs
	for k := uint64(0); k < 10; k++ {
		ticket, due := p.take()
		if ticket != k || due != 1000+int64(k)*200_000 {
			t.Fatalf("take %d: ticket %d due %d", k, ticket, due)
		}
	}
}

// The schedule is absolute: no rounding error builds up however many
// tickets, even when the interval is not a whole number of nanoseconds.
func TestPacerNoDrift(t *testing.T) {
	for _, rate := range []int{1, 3, 7, 5000, 38_000, 999_983} {
		p := newPacer(0, rate)
		for _, k := range []uint64{1, uint64(rate), 10 * uint64(rate), 86400 * uint64(rate)} { // up to maxDuration
			hi, lo := bits.Mul64(k, 1e9) // the exact k*1e9/rate, in 128 bits
			exact, _ := bits.Div64(hi, lo, uint64(rate))
			if got := p.due(k); uint64(got) != exact {
				t.Errorf("rate %d ticket %d: due %d ns, want %d", rate, k, got, exact)
			}
		}
	}
}

// Even spacing: consecutive tickets differ by the interval, give or take
// the nanosecond of rounding.
func TestPacerEven(t *testing.T) {
	p := newPacer(0, 3)
	prev := p.due(0)
	for k := uint64(1); k < 1000; k++ {
		d := p.due(k)
		if gap := d - prev; gap < 333_333_333 || gap > 333_333_334 {
			t.Fatalf("ticket %d: gap %d ns", k, gap)
		}
		prev = d
	}
}

// Workers share one pacer: every ticket is handed out exactly once.
func TestPacerConcurrent(t *testing.T) {
	p := newPacer(0, 1000)
	const workers, each = 8, 5000
	seen := make([][]uint64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				k, due := p.take()
				if due != p.due(k) {
					t.Errorf("ticket %d: due %d, want %d", k, due, p.due(k))
				}
				seen[w] = append(seen[w], k)
			}
		}()
	}
	wg.Wait()
	got := make([]bool, workers*each)
	for _, ks := range seen {
		for _, k := range ks {
			if k >= uint64(len(got)) || got[k] {
				t.Fatalf("ticket %d handed out twice or out of range", k)
			}
			got[k] = true
		}
	}
}
