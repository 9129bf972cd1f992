package tui

import "github.com/twtrace/twtrace/tracer/event"

// ---------------------------------------------------------------- MODEL

// logEntry is one line of the event log: an event, or a gap where the UI
// fell behind and skipped events (the table still has them).
type logEntry struct {
	ev      event.Event
	skipped uint64 // a gap of this many events; ev is unset
}

// ring is the bounded history of the event log: the newest entries, the
// oldest overwritten first.
type ring struct {
	buf   []logEntry
	start int    // index of the oldest entry
	n     int    // entries held
	total uint64 // entries ever pushed: the sequence number of the next one
}

func newRing(size int) *ring {
	return &ring{buf: make([]logEntry, max(size, 1))}
}

// push appends an entry, overwriting the oldest when full.
func (r *ring) push(e *logEntry) {
	i := r.start + r.n
	if i >= len(r.buf) {
		i -= len(r.buf)
	}
	r.buf[i] = *e
	r.total++
	if r.n < len(r.buf) {
		r.n++
		return
	}
	r.start++
	if r.start == len(r.buf) {
		r.start = 0
	}
}

// pushEvents appends a batch. Only the tail that the ring can hold is
// copied: a 5 000-event batch into a 2 000-entry ring copies 2 000.
func (r *ring) pushEvents(evs []event.Event) {
	if skip := len(evs) - len(r.buf); skip > 0 {
		r.total += uint64(skip)
		evs = evs[skip:]
	}
	for i := range evs {
		j := r.start + r.n
		if j >= len(r.buf) {
			j -= len(r.buf)
		}
		r.buf[j] = logEntry{ev: evs[i]}
		r.total++
		if r.n < len(r.buf) {
			r.n++
		} else if r.start++; r.start == len(r.buf) {
			r.start = 0
		}
	}
}

// clear drops every entry, as if none had been pushed.
func (r *ring) clear() { r.start, r.n, r.total = 0, 0, 0 }

// len returns the number of entries held.
func (r *ring) len() int { return r.n }

// at returns entry i, 0 being the oldest held.
func (r *ring) at(i int) *logEntry {
	j := r.start + i
	if j >= len(r.buf) {
		j -= len(r.buf)
	}
	return &r.buf[j]
}

// first returns the sequence number of the oldest entry held.
func (r *ring) first() uint64 { return r.total - uint64(r.n) }

// snapshot copies the entries out, oldest first, for a paused view.
func (r *ring) snapshot() []logEntry {
	out := make([]logEntry, r.n)
	for i := range out {
		out[i] = *r.at(i)
	}
	return out
}
