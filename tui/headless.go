package tui

import (
	"context"
	"errors"
	"time"

	tea "charm.land/bubbletea/v2"
)

// headlessRefresh: the headless loop queries the table once a second, as
// the program does under load (its queries are spaced by their own cost).
const headlessRefresh = time.Second

// Headless drives the UI's model without a terminal, as the program would on
// a 120x40 one: at every tick it collects the feed's events, renders a frame
// (and throws it away), and once a second queries the table for the view
// shown. It measures what the UI costs the traced host (twbench); it
// returns when ctx ends or the feed stops, with the feed's error if it failed.
func Headless(parent context.Context, feed Feed, opts Options) error {
	opts = opts.withDefaults()
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	m, wait := attach(ctx, feed, opts)
	m = step(m, tea.WindowSizeMsg{Width: 120, Height: 40})
	tick := time.NewTicker(opts.Tick)
	defer tick.Stop()
	lastRefresh := time.Time{}
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
				return wait()
			}
			if now.Sub(lastRefresh) >= headlessRefresh {
				lastRefresh = now
				m = m.Refresh()
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
