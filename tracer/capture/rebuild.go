package capture

import (
	"context"
	"slices"
	"time"

	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/table"
)

// Rebuild replays the capture into tab, the socket table as it was at each
// moment: its starting snapshot first, then every event flt selects
// (nil: all), in order, as fast as they are read, the table's clock
// following the capture's (Tick once a second of capture time). before and
// after, when not nil, are called for each event: before it is applied (tab
// is as it was just before the event's moment) and after (a refused bind()
// changes no socket, so its diagnosis then sees who held the port). The
// snapshot is filtered as the kernel filters a live snapshot: by port
// (local or remote), family and network namespace.
//
// It returns what Run returns: nil at the end, fn's error, a *CutError
// for a capture its recorder did not close (every whole event was
// applied), or the error that stopped the reading.
func (r *Reader) Rebuild(ctx context.Context, tab *table.Table, flt *event.Filter, before, after func(*event.Event) error) error {
	if flt == nil {
		flt = &event.Filter{}
	}
	socks, at := r.Snapshot()
	if len(socks) > 0 {
		tab.Restore(FilterSockets(socks, flt), at)
	}
	var lastTick time.Time
	return r.Run(ctx, 0, func(batch []event.Event) error {
		for i := range batch {
			ev := &batch[i]
			if !flt.Match(ev) {
				continue
			}
			if before != nil {
				if err := before(ev); err != nil {
					return err
				}
			}
			if lastTick.IsZero() {
				lastTick = ev.Time
			}
			if ev.Time.Sub(lastTick) >= time.Second {
				tab.Tick(ev.Time, nil) // time passed: timers that ran out end
				lastTick = ev.Time
			}
			tab.Apply(ev, nil)
			if after != nil {
				if err := after(ev); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// FilterSockets keeps the sockets of a snapshot that flt's ports (local or
// remote), family and namespace select, as the kernel filters a live one.
func FilterSockets(socks []table.Socket, flt *event.Filter) []table.Socket {
	if len(flt.Ports) == 0 && flt.Family == 0 && flt.NetNS == 0 {
		return socks
	}
	out := make([]table.Socket, 0, len(socks))
	for _, s := range socks {
		if flt.Family != 0 && s.Family != flt.Family || flt.NetNS != 0 && s.NetNS != flt.NetNS {
			continue
		}
		if len(flt.Ports) > 0 && !slices.Contains(flt.Ports, s.Src.Port()) && !slices.Contains(flt.Ports, s.Dst.Port()) {
			continue
		}
		out = append(out, s)
	}
	return out
}
