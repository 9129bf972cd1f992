package tui

import (
	"context"
	"errors"
	"time"

	tea "charm.land/bubbletea/v2"
)

// Headless drives the UI's model without a terminal, as the program would on
// a 120x40 one: at every tick it collects the feed's events, runs the table
// query the model asks for (on the model's own schedule: every tick, or less
// often when queries are slow), and renders a frame (and throws it away). It
// measures what the UI costs the traced host (twbench); it returns when ctx
// ends or the feed stops, with the feed's error if it failed.
func Headless(parent context.Context, feed Feed, opts Options) error {
	opts = opts.withDefaults()
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	m, wait := attach(ctx, feed, opts)
	m = step(m, tea.WindowSizeMsg{Width: 120, Height: 40})
	tick := time.NewTicker(opts.Tick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			cancel()
			// Ended by the caller: the feed's context error is no failure.
			if err := wait(); err != nil && !errors.Is(err, context.Canceled) && parent.Err() == nil {
				return err
			}
			return nil
		case now := <-tick.C:
			m = step(m, tickMsg(now))
			if m.feedDone {
				cancel()
				err := wait()
				if parent.Err() != nil && errors.Is(err, parent.Err()) {
					return nil // the feed saw the caller's end first: no failure
				}
				return err
			}
			if m.refresh.inFlight {
				// The query the program would run as a command, here, in line.
				m.onSnapshot(takeSnapshot(m.tab, m.refresh.req, m.kernelSource()))
			}
			_ = m.View()
		}
	}
}

// step is Update without its commands: the loop above does their work.
func step(m Model, msg tea.Msg) Model {
	mm, _ := m.Update(msg)
	return mm.(Model)
}
