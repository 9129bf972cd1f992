package tui

import (
	"sync"

	"github.com/twtrace/twtrace/tracer/event"
)

// ---------------------------------------------------------------- MODEL

// pending is where the feed's goroutine leaves events for the UI, which
// collects them once per tick. The feed never waits for the UI: a bubbletea
// message per event would block the feed on every Send and render once per
// event, and a burst would back up into the kernel's ring buffer, which then
// drops events. Here the feed only copies under a mutex.
//
// The buffer is bounded: what does not fit before the next tick is counted,
// not kept, and the log shows the gap. The table itself has every event
// (the feed applies them before handing them over): only the log skips.
type pending struct {
	mu      sync.Mutex
	buf     []event.Event
	limit   int
	dropped uint64 // since the last drain
	// fails keeps the refused syscalls of the dropped events: the Failures
	// view and its diagnoses miss none (bounded too, and counted).
	fails     []event.Event
	failsLost uint64
	total     uint64 // every event offered, dropped included
	resets    uint64 // the feed started again from the start (a replay that seeks back)
	done      bool   // the feed's Run returned
	err       error  // ... with this error
}

func newPending(limit int) *pending {
	return &pending{limit: limit, buf: make([]event.Event, 0, min(limit, 1024))}
}

// add copies a batch in; it is the fn handed to Feed.Run.
func (p *pending) add(batch []event.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total += uint64(len(batch))
	room := p.limit - len(p.buf)
	if room < len(batch) {
		for i := max(room, 0); i < len(batch); i++ {
			if isFailure(&batch[i]) {
				if len(p.fails) < maxFailures {
					p.fails = append(p.fails, batch[i])
				} else {
					p.failsLost++
				}
			}
		}
		p.dropped += uint64(len(batch) - max(room, 0))
		batch = batch[:max(room, 0)]
	}
	p.buf = append(p.buf, batch...)
	return nil
}

// reset forgets what is buffered: the feed starts again from its start
// (a replay seeking back), and what follows replaces it.
func (p *pending) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf, p.dropped, p.fails, p.failsLost = p.buf[:0], 0, nil, 0
	p.resets++
}

// finish records that the feed has stopped, and why.
func (p *pending) finish(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done, p.err = true, err
}

// drained is what one tick collects.
type drained struct {
	events    []event.Event
	dropped   uint64        // events that came after events and were not kept
	fails     []event.Event // the refused syscalls among the dropped
	failsLost uint64        // ... beyond what fails could keep
	total     uint64        // every event the feed ever delivered
	resets    uint64        // how many times the feed started again, ever: events come after the last
	done      bool
	err       error
}

// drain takes the buffered events, handing spare (emptied) back to the
// feed's side so that the two buffers alternate without allocating.
func (p *pending) drain(spare []event.Event) drained {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := drained{events: p.buf, dropped: p.dropped, total: p.total, done: p.done, err: p.err,
		fails: p.fails, failsLost: p.failsLost, resets: p.resets}
	p.buf, p.dropped, p.fails, p.failsLost = spare[:0], 0, nil, 0
	return d
}
