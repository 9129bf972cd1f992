package kring

import (
	"net"
	"testing"
	"time"

	"github.com/twtrace/twtrace/internal/kcount"
	"github.com/twtrace/twtrace/internal/tracertest"
)

// The floor ships one record per TCP transition: what its reader counted,
// plus what it reported lost and the runs the kernel skipped, is what an
// independent counter saw, exactly.
func TestFloorShipsEveryTransition(t *testing.T) {
	tracertest.Require(t)
	tracertest.LockBPF(t)
	counter, err := kcount.Open(0, 0)
	if err != nil {
		tracertest.Unavailable(t, err)
	}
	defer counter.Close()
	f, err := Open()
	if err != nil {
		tracertest.Unavailable(t, err)
	}
	defer f.Close()
	before, err := counter.Read()
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	got := make(chan uint64, 1)
	errc := make(chan error, 1)
	go func() {
		n, err := f.Drain(stop, 20*time.Millisecond)
		got <- n
		errc <- err
	}()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if _, err := tracertest.CloseFirst(l, nil, false); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	close(stop)
	read, err := <-got, <-errc
	if err != nil {
		t.Fatal(err)
	}
	// Detached now: the counter's count up to here covers the floor's runs
	// and perhaps other transitions of the host after it detached.
	after, err := counter.Read()
	if err != nil {
		t.Fatal(err)
	}
	lost, err := f.Lost()
	if err != nil {
		t.Fatal(err)
	}
	misses, err := f.Misses()
	if err != nil {
		t.Fatal(err)
	}
	shipped := read + lost + misses
	if shipped < 50*10 {
		t.Errorf("floor shipped %d records (+%d lost, %d skipped) for 50 connections, want at least 500", read, lost, misses)
	}
	if seen := after - before; shipped > seen {
		t.Errorf("floor shipped %d records, the counter saw only %d transitions", shipped, seen)
	}
}
