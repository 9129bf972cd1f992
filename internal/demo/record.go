package demo

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twtrace/twtrace/tracer/event"
)

// recorder keeps every event of the lesson's namespace that the session
// delivers, so that the narration can wait for the ones it talks about.
// A lesson makes a few hundred events: all are kept, for the test's
// assertions and the wait's error message.
type recorder struct {
	netns uint32
	mu    sync.Mutex
	evs   []event.Event
	lost  uint64
	err   error         // the session ended with it
	wake  chan struct{} // closed and replaced at each batch
}

func newRecorder(netns uint32) *recorder {
	return &recorder{netns: netns, wake: make(chan struct{})}
}

// sink is the session's sink.
func (r *recorder) sink(batch []event.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.evs)
	for i := range batch {
		ev := &batch[i]
		switch {
		case ev.Kind == event.KindLost:
			r.lost += ev.Lost
		case ev.NetNS != r.netns:
			continue
		}
		r.evs = append(r.evs, *ev)
	}
	if len(r.evs) > n {
		close(r.wake)
		r.wake = make(chan struct{})
	}
	return nil
}

// end records that the session stopped delivering, and why.
func (r *recorder) end(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		err = fmt.Errorf("the tracer stopped")
	}
	r.err = err
	close(r.wake)
	r.wake = make(chan struct{})
}

// mark is the position of the next event.
func (r *recorder) mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.evs)
}

// events returns a copy of the events from position from on.
func (r *recorder) events(from int) []event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event.Event(nil), r.evs[min(from, len(r.evs)):]...)
}

// matcher selects events.
type matcher func(*event.Event) bool

// count returns the events from position from on that match.
func (r *recorder) count(from int, m matcher) []event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []event.Event
	for i := min(from, len(r.evs)); i < len(r.evs); i++ {
		if m(&r.evs[i]) {
			out = append(out, r.evs[i])
		}
	}
	return out
}

// errNotSeen is a wait that ran out: what the lesson expected the tracer
// to show and it did not.
type errNotSeen struct {
	what      string
	want, got int
	after     time.Duration
	lost      uint64
}

func (e *errNotSeen) Error() string {
	msg := fmt.Sprintf("the tracer did not show %s within %v", e.what, e.after)
	if e.want > 1 {
		msg += fmt.Sprintf(" (%d of %d)", e.got, e.want)
	}
	if e.lost > 0 {
		msg += fmt.Sprintf("; the kernel could not deliver %d events", e.lost)
	}
	return msg
}

// wait returns the first n events from position from on that match, once
// there are n, or fails after d.
func (r *recorder) wait(ctx context.Context, from, n int, d time.Duration, what string, m matcher) ([]event.Event, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	seen := from
	var got []event.Event
	for {
		r.mu.Lock()
		for ; seen < len(r.evs) && len(got) < n; seen++ {
			if m(&r.evs[seen]) {
				got = append(got, r.evs[seen])
			}
		}
		wake, lost, err := r.wake, r.lost, r.err
		r.mu.Unlock()
		if len(got) >= n {
			return got, nil
		}
		if err != nil {
			return got, fmt.Errorf("waiting for %s: %w", what, err)
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return got, ctx.Err()
		case <-t.C:
			return got, &errNotSeen{what: what, want: n, got: len(got), after: d, lost: lost}
		}
	}
}
