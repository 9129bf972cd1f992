package tracer

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twtrace/twtrace/internal/tracertest"
	"github.com/twtrace/twtrace/tracer/event"
)

// Under steady traffic that only the userspace filter rejects, the reader
// still tells its consumer, with an empty batch, each time it finds the
// ring buffer drained, not only when a poll interval (a second, with
// wakeups per event) passes with nothing to read: the socket table judges
// what waits for the stream to catch up (a dump's TIME_WAIT enters and
// ends) by those calls.
func TestDrainedUnderFilteredTraffic(t *testing.T) {
	tracertest.Require(t)
	tracertest.LockBPF(t)
	tr, err := Open(Config{Filter: event.Filter{Comm: "no-such-task"}})
	if err != nil {
		t.Fatalf("open tracer: %v", err)
	}
	defer tr.Close()
	var delivered, drained atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- tr.Run(ctx, func(b []event.Event) error {
			if len(b) == 0 {
				drained.Add(1)
			}
			for i := range b {
				if b[i].Kind != event.KindLost {
					delivered.Add(1)
				}
			}
			return nil
		})
	}()
	time.Sleep(200 * time.Millisecond)
	before := drained.Load()
	// 0.9 s of connections, less than the poll interval, bounded in count.
	port := freePort(t, "tcp4", "127.0.0.1")
	n := 0
	for start := time.Now(); time.Since(start) < 900*time.Millisecond && n < 2000; n++ {
		exchange(t, "tcp4", "127.0.0.1", port)
		time.Sleep(2 * time.Millisecond)
	}
	got := drained.Load() - before
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if delivered.Load() != 0 {
		t.Errorf("%d events passed a filter on a task that does not exist", delivered.Load())
	}
	if n < 20 || got < int64(n)/4 {
		t.Errorf("%d exchanges in 0.9 s, %d empty batches: want one for most of the times the ring buffer was drained", n, got)
	}
}
