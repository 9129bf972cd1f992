package jsonl

import (
	"math/rand/v2"
	"strconv"
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

func TestAppendMillisMatchesFloat(t *testing.T) {
	for _, us := range []int64{0, 1, 9, 10, 100, 999, 1000, 1001, 1010, 1100, 12345, 12340, 2074, 60000000, 123456789012} {
		want := strconv.AppendFloat(nil, float64(us)/1000, 'f', -1, 64)
		if got := appendMillis(nil, us); string(got) != string(want) {
			t.Errorf("appendMillis(%d) = %s, want %s", us, got, want)
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 100000 {
		us := r.Int64N(1 << 40)
		if got, want := appendMillis(nil, us), strconv.AppendFloat(nil, float64(us)/1000, 'f', -1, 64); string(got) != string(want) {
			t.Fatalf("appendMillis(%d) = %s, want %s", us, got, want)
		}
	}
}

func TestIntsMatchStrconv(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	vals := []uint64{0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 65535, 4026531840, 1<<64 - 1}
	for range 100000 {
		vals = append(vals, r.Uint64()>>r.UintN(64))
	}
	for _, v := range vals {
		if got, want := string(appendUint(nil, v)), strconv.FormatUint(v, 10); got != want {
			t.Fatalf("appendUint(%d) = %s", v, got)
		}
		if got, want := string(appendHex(nil, v)), strconv.FormatUint(v, 16); got != want {
			t.Fatalf("appendHex(%d) = %s", v, got)
		}
		if got, want := string(appendIntDec(nil, -int64(v>>1))), strconv.FormatInt(-int64(v>>1), 10); got != want {
			t.Fatalf("appendIntDec(%d) = %s", -int64(v>>1), got)
		}
	}
}
