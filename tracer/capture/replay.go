package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/twtrace/twtrace/tracer/event"
)

// Replay pacing: events due within pacingSlack of now go out in the current
// batch rather than after a sleep of their own; a paced batch is held at most
// maxHold, and holds at most maxBatch events.
const (
	pacingSlack = time.Millisecond
	maxHold     = 10 * time.Millisecond
	maxBatch    = 1024
)

// Run delivers the capture's remaining events to fn in batches, as a live
// session's Run does, so the same sinks consume both. With speed > 0 the
// events keep their recorded pace, scaled: 1 is as recorded, 10 ten times
// faster; 0 delivers as fast as fn takes them. fn must not keep the slice.
//
// Run returns nil at the end of the capture or when ctx ends, fn's error,
// or the error that stopped the reading (see Next) after delivering every
// event before it.
func (r *Reader) Run(ctx context.Context, speed float64, fn func([]event.Event) error) error {
	if speed < 0 || math.IsNaN(speed) || math.IsInf(speed, 0) {
		return fmt.Errorf("replay speed %v: want 0 (as fast as possible) or a positive factor", speed)
	}
	batch := make([]event.Event, 0, maxBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := fn(batch)
		batch = batch[:0]
		return err
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	var first time.Time // the first event's timestamp ...
	var start time.Time // ... is due now
	var held time.Time  // when the batch's first event was read
	var ev event.Event
	for {
		if ctx.Err() != nil {
			return nil
		}
		err := r.Next(&ev)
		if err != nil {
			if ferr := flush(); ferr != nil {
				return ferr
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if speed > 0 {
			if start.IsZero() {
				first, start = ev.Time, time.Now()
			}
			off := float64(ev.Time.Sub(first)) / speed
			due := start.Add(time.Duration(min(off, math.MaxInt64/2)))
			now := time.Now()
			if len(batch) > 0 && now.Sub(held) > maxHold {
				// Behind schedule: what is overdue goes out now, not when
				// the replay catches up.
				if err := flush(); err != nil {
					return err
				}
			}
			if len(batch) == 0 {
				held = now
			}
			if wait := due.Sub(now); wait > pacingSlack {
				if err := flush(); err != nil {
					return err
				}
				if timer == nil {
					timer = time.NewTimer(wait)
				} else {
					timer.Reset(wait)
				}
				select {
				case <-ctx.Done():
					return nil
				case <-timer.C:
				}
			}
		}
		batch = append(batch, ev)
		if len(batch) == maxBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
}
