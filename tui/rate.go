package tui

import "time"

// ---------------------------------------------------------------- MODEL

// rateWindow is the shortest interval a rate is computed over: shorter ones
// make a jittery number, and a list sorted by it reorders on every frame.
const rateWindow = time.Second

// meter turns successive readings of a growing counter into a rate per
// second, recomputed once per window and held in between.
type meter struct {
	prev   uint64
	prevAt time.Time
	rate   float64
	ok     bool // rate holds a value
	seen   bool // prev holds a reading
}

// observe takes a reading of the counter at a time.
func (m *meter) observe(v uint64, at time.Time) {
	if !m.seen {
		m.prev, m.prevAt, m.seen = v, at, true
		return
	}
	dt := at.Sub(m.prevAt)
	switch {
	case dt < 0 || v < m.prev:
		// The clock stepped back (a replay restarted) or the counter
		// restarted: start over from this reading.
		m.prev, m.prevAt, m.ok = v, at, false
	case dt >= rateWindow:
		m.rate = float64(v-m.prev) / dt.Seconds()
		m.prev, m.prevAt, m.ok = v, at, true
	}
}

// get returns the rate and whether there is one yet.
func (m *meter) get() (float64, bool) { return m.rate, m.ok }
