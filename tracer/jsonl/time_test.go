package jsonl

import (
	"math/rand/v2"
	"testing"
	"time"
)

// appendTime must agree with the standard library exactly.
func TestAppendTimeMatchesRFC3339Nano(t *testing.T) {
	check := func(tm time.Time) {
		t.Helper()
		if got, want := string(appendTime(nil, tm)), tm.UTC().Format(time.RFC3339Nano); got != want {
			t.Fatalf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	}
	for _, tm := range []time.Time{
		time.Unix(0, 0), time.Date(2000, 2, 29, 23, 59, 59, 999999999, time.UTC),
		time.Date(2026, 11, 25, 9, 30, 0, 100000000, time.UTC), time.Date(2100, 3, 1, 0, 0, 0, 1, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 5, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("x", 3600)),
	} {
		check(tm)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		check(time.Unix(r.Int64N(253402300800), r.Int64N(1e9)))
	}
}

func BenchmarkAppendTime(b *testing.B) {
	tm := time.Date(2026, 11, 25, 9, 30, 0, 123456789, time.UTC)
	buf := make([]byte, 0, 64)
	for b.Loop() {
		buf = appendTime(buf[:0], tm)
	}
}
