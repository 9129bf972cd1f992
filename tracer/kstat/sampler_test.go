package kstat

import (
	"math"
	"testing"
	"time"
)

func TestSamplerRates(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	var s Sampler
	if _, ok := s.Add(Counters{Time: t0, TW: 100, TWKilled: 4, TimeWait: 9}); ok {
		t.Fatal("first reading gave rates")
	}
	r, ok := s.Add(Counters{Time: t0.Add(2 * time.Second), TW: 150, TWKilled: 4, TWRecycled: 6,
		TCPTimeWaitOverflow: 1, TimeWait: 30})
	want := Rates{Interval: 2 * time.Second, TW: 25, TWKilled: 0, TWRecycled: 3, TCPTimeWaitOverflow: 0.5, TimeWait: 30}
	if !ok || r != want {
		t.Errorf("rates = %+v, %v; want %+v", r, ok, want)
	}
}

func TestSamplerReset(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	var s Sampler
	s.Add(Counters{Time: t0, TW: 5000, TWRecycled: 70})
	// The namespace was recreated: TW restarts from zero and reaches 40,
	// TWRecycled keeps growing.
	r, ok := s.Add(Counters{Time: t0.Add(4 * time.Second), TW: 40, TWRecycled: 90})
	if !ok || !r.Reset || r.TW != 10 || r.TWRecycled != 5 {
		t.Errorf("after a reset: %+v, %v; want TW 10/s, TWRecycled 5/s, Reset", r, ok)
	}
	r, ok = s.Add(Counters{Time: t0.Add(5 * time.Second), TW: 41, TWRecycled: 90})
	if !ok || r.Reset || r.TW != 1 {
		t.Errorf("after the reset: %+v, %v; want TW 1/s, no Reset", r, ok)
	}
}

func TestSamplerClockStep(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	var s Sampler
	s.Add(Counters{Time: t0, TW: 10})
	if _, ok := s.Add(Counters{Time: t0, TW: 20}); ok {
		t.Error("a reading at the same time gave rates")
	}
	if _, ok := s.Add(Counters{Time: t0.Add(-time.Second), TW: 30}); ok {
		t.Error("a reading from the past gave rates")
	}
	// That last reading is the new starting point.
	r, ok := s.Add(Counters{Time: t0, TW: 33})
	if !ok || math.Abs(r.TW-3) > 1e-9 {
		t.Errorf("rates = %+v, %v; want TW 3/s from the last reading", r, ok)
	}
}
