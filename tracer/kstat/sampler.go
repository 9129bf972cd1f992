package kstat

import "time"

// Rates are the TcpExt counters' rates over one interval, per second.
type Rates struct {
	Interval            time.Duration
	TW                  float64
	TWKilled            float64
	TWRecycled          float64
	TCPTimeWaitOverflow float64
	TimeWait            int  // the sockstat gauge at the interval's end
	Reset               bool // a counter went backwards and was counted from zero
}

// Sampler turns successive Counters into Rates. It keeps only the previous
// reading, so it works as well on readings replayed from a capture. The
// zero value is ready to use; it is not safe for concurrent use.
type Sampler struct {
	prev Counters
	have bool
}

// Add takes a reading and returns the rates since the previous one. ok is
// false for the first reading and for one not later than the previous (a
// clock step): that reading becomes the new starting point.
func (s *Sampler) Add(c Counters) (r Rates, ok bool) {
	prev, had := s.prev, s.have
	s.prev, s.have = c, true
	if !had {
		return Rates{}, false
	}
	dt := c.Time.Sub(prev.Time)
	if dt <= 0 {
		return Rates{}, false
	}
	r = Rates{Interval: dt, TimeWait: c.TimeWait}
	rate := func(cur, old uint64) float64 {
		d := cur - old
		if cur < old {
			// The counters only grow; going back means a new series
			// (another namespace behind the same name, a reboot between
			// captured readings): count what this one reached.
			d = cur
			r.Reset = true
		}
		return float64(d) / dt.Seconds()
	}
	r.TW = rate(c.TW, prev.TW)
	r.TWKilled = rate(c.TWKilled, prev.TWKilled)
	r.TWRecycled = rate(c.TWRecycled, prev.TWRecycled)
	r.TCPTimeWaitOverflow = rate(c.TCPTimeWaitOverflow, prev.TCPTimeWaitOverflow)
	return r, true
}
