package tracer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/tracer/event"
)

// Run reads events until ctx is done or fn fails, handing them to fn in
// batches. fn must not keep the slice: it is reused. fn is also called with
// an empty batch whenever the ring buffer is found drained with nothing to
// deliver (a poll interval that ended idle, or records the filter kept none
// of; at least once per interval), so that a consumer can do periodic work
// on the same goroutine. When ctx is done, Run detaches the programs,
// waits for runs still in progress, delivers what is left in the ring buffer
// and then the final loss count, and returns nil. A panic in fn detaches the
// programs and is returned as an error.
func (t *Tracer) Run(ctx context.Context, fn func([]event.Event) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			t.detach()
			t.log.Debug("event pipeline panicked", "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("internal error in the event pipeline: %v", r)
		}
	}()
	stop := context.AfterFunc(ctx, func() { _ = t.reader.Flush() })
	defer stop()

	var rec ringbuf.Record
	t.reader.SetDeadline(time.Now().Add(t.pollInterval()))
	for {
		err := t.reader.ReadInto(&rec)
		switch {
		case err == nil:
			t.add(rec.RawSample)
			if rec.Remaining == 0 || len(t.batch) >= maxBatch {
				// A drained ring buffer is said even when the filter kept
				// none of what was read: under steady traffic that only
				// the filter rejects, no poll interval ever ends idle.
				if err := t.flush(fn, rec.Remaining == 0, false); err != nil {
					return err
				}
			}
		case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, ringbuf.ErrFlushed):
			if ctx.Err() != nil {
				return t.shutdown(fn, &rec)
			}
			if err := t.flush(fn, true, false); err != nil {
				return err
			}
			t.reader.SetDeadline(time.Now().Add(t.pollInterval()))
		default:
			return fmt.Errorf("read ring buffer: %w", err)
		}
	}
}

func (t *Tracer) pollInterval() time.Duration {
	if t.cfg.WakeupEvery > 0 {
		return t.cfg.WakeupEvery
	}
	return lostCheckEvery
}

// add decodes one record into the batch, with the TIME_WAIT it implies.
func (t *Tracer) add(raw []byte) {
	t.batch = t.batch[:len(t.batch)+1]
	ev := &t.batch[len(t.batch)-1]
	if err := Decode(raw, t.clock, ev); err != nil {
		t.batch = t.batch[:len(t.batch)-1]
		t.log.Warn("undecodable record", "err", err)
		return
	}
	if !t.userFilter.Match(ev) {
		t.batch = t.batch[:len(t.batch)-1]
		return
	}
	if ev.Kind == event.KindState && ev.New == event.StateClose {
		var tw event.Event
		if event.InferTimeWait(ev, &tw) {
			t.batch = append(t.batch, tw)
		}
	}
}

// flush hands the batch to fn, followed by a lost record when the kernel
// reported loss since the last check (every lostCheckEvery: the check costs
// a syscall per program). An idle flush (the poll interval passed) calls fn
// even with nothing; the final one always checks for loss.
func (t *Tracer) flush(fn func([]event.Event) error, idle, final bool) error {
	if now := time.Now(); final || now.Sub(t.lastLost) >= lostCheckEvery {
		t.lastLost = now
		if n := t.newLoss(); n > 0 {
			t.batch = append(t.batch, event.Event{Kind: event.KindLost, Time: now.UTC(), Lost: n})
		}
	}
	if len(t.batch) == 0 && !idle {
		return nil
	}
	err := fn(t.batch)
	t.batch = t.batch[:0]
	return err
}

// newLoss returns the events lost since the previous call: records the ring
// buffer had no room for, and program runs the kernel skipped.
func (t *Tracer) newLoss() uint64 {
	s, err := t.Stats()
	if err != nil {
		t.log.Warn("read loss counters", "err", err)
		return 0
	}
	total := s.Lost + s.SysLost + s.RecursionMisses
	if total <= t.lostSeen {
		return 0
	}
	n := total - t.lostSeen
	t.lostSeen = total
	return n
}

// shutdown detaches the programs, drains the ring buffer and delivers the
// last batch with the final loss count: the counters are read last, when
// no program can add to them any more.
func (t *Tracer) shutdown(fn func([]event.Event) error, rec *ringbuf.Record) error {
	t.detach()
	t.reader.SetDeadline(time.Now())
	for {
		err := t.reader.ReadInto(rec)
		if err != nil {
			break
		}
		t.add(rec.RawSample)
		if len(t.batch) >= maxBatch {
			if err := t.flush(fn, false, false); err != nil {
				return err
			}
		}
	}
	return t.flush(fn, true, true)
}

// detach unlinks every program and waits for the runs already in progress.
func (t *Tracer) detach() {
	if len(t.links) == 0 {
		return
	}
	for _, l := range t.links {
		if err := l.Close(); err != nil {
			t.log.Warn("detach", "err", err)
		}
	}
	t.links = nil
	if err := quiesce(); err != nil {
		t.log.Debug("wait for programs in progress", "err", err)
	}
}

// quiesce returns when every program run that began before it was called
// has ended. Unlinking a program stops new runs at once, but the kernel lets
// runs in progress finish (tracepoint probes are freed after an RCU grace
// period), and those still write to the ring buffer and the counters: read
// before they end, an event would be neither delivered nor counted lost.
// Programs run with preemption disabled, so an RCU grace period covers
// them, and membarrier(MEMBARRIER_CMD_GLOBAL) waits for one
// (synchronize_rcu). Where it is not available (nohz_full), a pause of a
// few grace periods does in practice.
func quiesce() error {
	const membarrierCmdGlobal = 1 // MEMBARRIER_CMD_GLOBAL
	if _, _, errno := unix.Syscall(unix.SYS_MEMBARRIER, membarrierCmdGlobal, 0, 0); errno != 0 {
		time.Sleep(50 * time.Millisecond)
		return fmt.Errorf("membarrier: %w", errno)
	}
	return nil
}
