package main

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// progress is record's one-line live progress on a terminal's stderr:
// elapsed time, events, lost (red when not zero), bytes, rate. Piped, it
// shows nothing: the final line says it all.
type progress struct {
	w     io.Writer
	color bool
	name  string
	start time.Time

	events, lost, bytes atomic.Int64 // from the pipeline
	done                chan struct{}
	wg                  sync.WaitGroup
}

// progressEvery is how often the line is redrawn.
const progressEvery = 250 * time.Millisecond

// startProgress starts the line on w when it is a terminal; the zero
// progress otherwise, whose methods do nothing.
func startProgress(w io.Writer, name string) *progress {
	if !isTerminal(w) {
		return nil
	}
	p := &progress{w: w, color: colorful(w), name: name, start: time.Now(), done: make(chan struct{})}
	p.wg.Add(1)
	go p.loop()
	return p
}

// update records the totals so far; it is called on the pipeline's goroutine.
func (p *progress) update(events int64, lost uint64, bytes int64) {
	if p == nil {
		return
	}
	p.events.Store(events)
	p.lost.Store(int64(lost))
	p.bytes.Store(bytes)
}

// stop erases the line, for the final one.
func (p *progress) stop() {
	if p == nil {
		return
	}
	close(p.done)
	p.wg.Wait()
	fmt.Fprint(p.w, "\r\x1b[K")
}

func (p *progress) loop() {
	defer p.wg.Done()
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	var lastN int64
	last := p.start
	rate := 0.0
	for {
		select {
		case <-p.done:
			return
		case now := <-tick.C:
			n := p.events.Load()
			if dt := now.Sub(last).Seconds(); dt > 0 {
				// A second's worth of smoothing: the rate of the last ticks.
				r := float64(n-lastN) / dt
				rate = rate + (r-rate)*min(1, dt)
			}
			lastN, last = n, now
			fmt.Fprint(p.w, "\r\x1b[K"+p.line(now.Sub(p.start), n, p.lost.Load(), p.bytes.Load(), rate))
		}
	}
}

// line is the progress line, without colour codes unless wanted.
func (p *progress) line(elapsed time.Duration, events, lost, bytes int64, rate float64) string {
	l := fmt.Sprintf("%d lost", lost)
	if lost > 0 && p.color {
		l = "\x1b[31m" + l + "\x1b[0m"
	}
	s := int(elapsed.Seconds())
	return fmt.Sprintf("twtrace: recording %02d:%02d:%02d  %d events  %s  %s  %.0f events/s  %s",
		s/3600, s/60%60, s%60, events, l, byteSize(bytes), rate, p.name)
}
