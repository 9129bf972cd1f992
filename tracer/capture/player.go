package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/table"
)

// Player plays a capture to a live view that can move through it: pause,
// step one event, change speed, seek to a time, jump to the next or the
// previous refused syscall. Its table is always the capture's at the
// position played: from the snapshot and every event up to it. Seeking back
// reads the file again from its start (a capture is not held in memory);
// the view is told to forget what it showed (OnReset) before the events up
// to the new position come again. While it plays, a second pass over the
// file (the index) counts the events the filter keeps and finds when the
// capture ends, so the position reads as a fraction of the whole.
type Player struct {
	path    string
	flt     *event.Filter
	tab     *table.Table
	hdr     Header
	restore func(*table.Table, *Reader)

	ctl     chan PlayControl
	onReset func()

	mu  sync.Mutex
	pos Position
	// fails is the Played count right after each refused syscall: every
	// one once the index has read the whole capture (indexed), until then
	// those played so far, in any pass.
	fails   []int64
	indexed bool
	cut     error // the capture's *CutError, if it was cut off
}

// maxIndexedFailures bounds the index's list of refused syscalls (8 bytes
// each): past it, the jumps to them find them as they play.
const maxIndexedFailures = 1 << 20

// Position is where a Player is.
type Position struct {
	Time    time.Time // the capture's clock: the last event played, or the time sought
	Played  int64     // events played from the start (those the filter keeps)
	Total   int64     // events the filter keeps in the whole capture; -1 until the index has counted them
	Last    time.Time // the capture's last event; zero until the index has read it
	Speed   float64   // the pace, a factor of the recorded one; 0: as fast as possible
	Paused  bool
	AtEnd   bool // every event played
	Seeking bool // moving to a position, not at its pace
	Failed  int  // refused syscalls played so far
	OnFail  bool // the last event played is one
	Refused int  // refused syscalls in the whole capture (the filter's); -1 until indexed
}

// PlayOp is what a control asks.
type PlayOp uint8

// Controls.
const (
	PlayPause       PlayOp = iota + 1 // pause, or resume when paused
	PlayStep                          // play one event and stay paused
	PlaySpeed                         // play at Speed
	PlaySeek                          // go to At, and pause there
	PlayNextFailure                   // go to the next refused syscall, and pause after it
	PlayPrevFailure                   // go back to the refused syscall before the position (before the one just played)
)

// PlayControl is one command for a Player.
type PlayControl struct {
	Op    PlayOp
	Speed float64   // PlaySpeed
	At    time.Time // PlaySeek
}

// Bounds of a paced speed; 0 is as fast as possible.
const (
	MinSpeed = 0.125
	MaxSpeed = 1024
)

// Faster is the speed after s, twice it: past MaxSpeed, as fast as possible.
func Faster(s float64) float64 {
	if s == 0 || s*2 > MaxSpeed {
		return 0
	}
	return s * 2
}

// Slower is the speed before s, half of it, at least MinSpeed: from as fast
// as possible, MaxSpeed.
func Slower(s float64) float64 {
	if s == 0 {
		return MaxSpeed
	}
	return max(s/2, MinSpeed)
}

func clampSpeed(s float64) float64 {
	switch {
	case s == 0:
		return 0
	case s < 0 || math.IsNaN(s) || math.IsInf(s, 0):
		return 1
	}
	return min(max(s, MinSpeed), MaxSpeed)
}

// NewPlayer opens the capture at path for playing at speed (0: as fast as
// possible), its events filtered by flt (nil: all), into a new table that
// restore fills from the snapshot (and may configure from the header) each
// time the player starts from the capture's start.
func NewPlayer(path string, flt *event.Filter, speed float64, restore func(*table.Table, *Reader)) (*Player, error) {
	r, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	p := &Player{path: path, flt: flt, tab: table.New(table.Config{}), hdr: r.Header(),
		ctl: make(chan PlayControl, 16), restore: restore}
	p.pos.Speed = clampSpeed(speed)
	p.pos.Time = p.hdr.Started
	p.pos.Total, p.pos.Refused = -1, -1
	return p, nil
}

// Header is the capture's header.
func (p *Player) Header() Header { return p.hdr }

// Table is the table the player keeps at its position.
func (p *Player) Table() *table.Table { return p.tab }

// OnReset sets what is called when a seek back starts again from the
// capture's start: the view forgets the events it showed. It is called on
// Run's goroutine, before the first event of the new pass. Set it before Run.
func (p *Player) OnReset(fn func()) { p.onReset = fn }

// Control sends a command; it never blocks (a full queue drops it).
func (p *Player) Control(c PlayControl) {
	select {
	case p.ctl <- c:
	default:
	}
}

// Position is where the player is now.
func (p *Player) Position() Position {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pos
}

// Now is the capture's clock.
func (p *Player) Now() time.Time { return p.Position().Time }

// Cut is the capture's CutError once the player has read to where it was
// cut, nil for a capture its recorder closed.
func (p *Player) Cut() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut
}

// playing is the state of one pass over the file.
type playing struct {
	r      *Reader
	ev     event.Event // the event read ahead, not yet played
	have   bool
	eof    bool
	base   time.Time // the capture time that is due at wall time start
	start  time.Time
	target time.Time // seeking a time: play everything before it at once
	upto   int64     // seeking a count: play until Played reaches it; 0: none
	next   int       // seeking the next refused syscall, this many of them
	batch  []event.Event
}

func (pl *playing) seeking() bool { return !pl.target.IsZero() || pl.upto > 0 || pl.next > 0 }

// stopSeeking forgets where the pass was going.
func (pl *playing) stopSeeking() { pl.target, pl.upto, pl.next = time.Time{}, 0, 0 }

// Run plays until ctx ends, delivering the events it plays to fn in
// batches; fn must not keep the slice. At the end of the capture it waits
// for a control that moves back. It returns ctx's error when ctx ends, as a
// live session does, fn's error, or the error that stopped the reading (a
// cut capture is not one: see Cut).
func (p *Player) Run(ctx context.Context, fn func([]event.Event) error) error {
	go p.index(ctx)
	pl, err := p.open()
	if err != nil {
		return err
	}
	defer func() { pl.r.Close() }()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for ctx.Err() == nil {
		// A control is taken between any two events: a pause stops a
		// long seek where it is.
		select {
		case c := <-p.ctl:
			if pl, err = p.control(pl, c, fn); err != nil {
				return err
			}
		default:
		}
		if err := p.readAhead(pl); err != nil {
			return err
		}
		pos := p.Position()
		var wait <-chan time.Time
		if pl.have && (pl.seeking() || !pos.Paused) {
			d := time.Until(pl.due(pl.ev.Time, pos.Speed))
			if pl.seeking() || d <= pacingSlack {
				if err := p.play(pl, fn); err != nil {
					return err
				}
				continue
			}
			timer.Reset(d)
			wait = timer.C
		}
		// Waiting: for the next event's time, or for a control.
		if err := p.flush(pl, fn); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wait:
		case c := <-p.ctl:
			timer.Stop()
			if pl, err = p.control(pl, c, fn); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

// due is when, on the wall clock, a capture time is to be played; at speed
// 0, now.
func (pl *playing) due(t time.Time, speed float64) time.Time {
	if speed == 0 {
		return time.Time{}
	}
	off := float64(t.Sub(pl.base)) / speed
	return pl.start.Add(time.Duration(min(off, math.MaxInt64/2)))
}

// open starts a pass from the capture's start: a new reader, the table
// restored from its snapshot.
func (p *Player) open() (*playing, error) {
	r, err := Open(p.path)
	if err != nil {
		return nil, err
	}
	p.tab.Reset()
	if p.restore != nil {
		p.restore(p.tab, r)
	}
	p.mu.Lock()
	p.pos.Played, p.pos.Failed, p.pos.OnFail, p.pos.AtEnd, p.pos.Time = 0, 0, false, false, p.hdr.Started
	p.mu.Unlock()
	return &playing{r: r, batch: make([]event.Event, 0, maxBatch)}, nil
}

// next reads the next event the filter keeps from r: io.EOF at the end (a
// cut capture's end too, recorded in p.cut).
func (p *Player) next(r *Reader, ev *event.Event) error {
	for {
		err := r.Next(ev)
		var ce *CutError
		switch {
		case errors.As(err, &ce):
			p.mu.Lock()
			p.cut = err
			p.mu.Unlock()
			return io.EOF
		case err != nil:
			return err
		case p.flt == nil || p.flt.Match(ev):
			return nil
		}
	}
}

// readAhead reads the next event, if none is waiting.
func (p *Player) readAhead(pl *playing) error {
	if pl.have || pl.eof {
		return nil
	}
	switch err := p.next(pl.r, &pl.ev); {
	case errors.Is(err, io.EOF):
		pl.eof = true
		pl.stopSeeking()
		p.mu.Lock()
		p.pos.AtEnd, p.pos.Seeking = true, false
		p.mu.Unlock()
	case err != nil:
		return err
	default:
		pl.have = true
		if pl.base.IsZero() {
			pl.base, pl.start = pl.ev.Time, time.Now()
		}
	}
	return nil
}

// play plays the event read ahead, or ends a seek that has arrived before it.
func (p *Player) play(pl *playing, fn func([]event.Event) error) error {
	ev := &pl.ev
	if !pl.target.IsZero() && !ev.Time.Before(pl.target) {
		p.arrive(pl, pl.target)
		return nil
	}
	pl.have = false
	p.tab.Apply(ev, nil)
	pl.batch = append(pl.batch, *ev)
	failed := IsFailure(ev)
	p.mu.Lock()
	p.pos.Played++
	p.pos.Time = ev.Time
	p.pos.OnFail = failed
	if failed {
		if n := len(p.fails); !p.indexed && (n == 0 || p.fails[n-1] < p.pos.Played) {
			p.fails = append(p.fails, p.pos.Played)
		}
		p.pos.Failed++
	}
	played := p.pos.Played
	p.mu.Unlock()
	if failed && pl.next > 0 {
		pl.next--
		if pl.next == 0 {
			p.arrive(pl, ev.Time)
		}
	}
	if pl.upto > 0 && played >= pl.upto {
		p.arrive(pl, ev.Time)
	}
	if len(pl.batch) == maxBatch {
		return p.flush(pl, fn)
	}
	return nil
}

// arrive ends a seek, a step or a jump: paused at t.
func (p *Player) arrive(pl *playing, t time.Time) {
	pl.stopSeeking()
	p.mu.Lock()
	p.pos.Paused, p.pos.Seeking = true, false
	if t.After(p.pos.Time) {
		p.pos.Time = t
	}
	p.mu.Unlock()
}

// IsFailure tells a refused bind(), connect() or listen().
func IsFailure(ev *event.Event) bool {
	return ev.Ret < 0 && (ev.Kind == event.KindBind || ev.Kind == event.KindConnect || ev.Kind == event.KindListen)
}

func (p *Player) flush(pl *playing, fn func([]event.Event) error) error {
	if len(pl.batch) == 0 {
		return nil
	}
	err := fn(pl.batch)
	pl.batch = pl.batch[:0]
	return err
}

// control applies a command; a move back starts a new pass.
func (p *Player) control(pl *playing, c PlayControl, fn func([]event.Event) error) (*playing, error) {
	p.mu.Lock()
	pos := p.pos
	rebase := func() { pl.base, pl.start = p.pos.Time, time.Now() }
	switch c.Op {
	case PlayPause:
		p.pos.Paused = !p.pos.Paused
		if !p.pos.Paused { // resuming: from here, at the pace
			rebase()
		}
	case PlayStep:
		p.pos.Paused = true
		switch {
		case pl.upto > 0: // a step on a step: one more
			pl.upto++
		case pl.have || !pl.eof:
			pl.upto = p.pos.Played + 1
		}
	case PlaySpeed:
		p.pos.Speed = clampSpeed(c.Speed)
		rebase()
	case PlayNextFailure, PlayPrevFailure:
		// From where the pass is going, or where it is.
		ref := pos.Played
		if pl.upto > 0 {
			ref = pl.upto
		}
		to, known := p.failureFrom(ref, c.Op == PlayNextFailure)
		p.mu.Unlock()
		switch {
		case to > 0:
			return p.seekCount(pl, to, pos.Played, fn)
		case c.Op == PlayNextFailure && !known && !pl.eof:
			// Not indexed yet: the next one is found as it plays.
			pl.target, pl.upto = time.Time{}, 0
			pl.next++
			p.setSeeking()
		}
		return pl, nil
	case PlaySeek:
		p.mu.Unlock()
		at := c.At
		if at.Before(p.hdr.Started) {
			at = p.hdr.Started
		}
		// Back, or to the time of an event already played: from the start.
		if at.Before(pos.Time) || at.Equal(pos.Time) && pos.Played > 0 {
			return p.restart(pl, fn, func(pl *playing) { pl.target = at })
		}
		pl.target = at
		p.setSeeking()
		return pl, nil
	default:
		p.mu.Unlock()
		return pl, fmt.Errorf("unknown replay control %d", c.Op)
	}
	p.mu.Unlock()
	return pl, nil
}

func (p *Player) setSeeking() {
	p.mu.Lock()
	p.pos.Seeking = true
	p.mu.Unlock()
}

// failureFrom is the Played count right after the refused syscall after
// (next) or before ref; 0 if there is none, known when the list is whole
// (or, before, has them all: those played).
func (p *Player) failureFrom(ref int64, next bool) (to int64, known bool) {
	i, _ := slices.BinarySearch(p.fails, ref)
	if next {
		if i < len(p.fails) && p.fails[i] == ref {
			i++
		}
		if i < len(p.fails) {
			return p.fails[i], true
		}
		return 0, p.indexed
	}
	if i > 0 {
		return p.fails[i-1], true
	}
	return 0, true
}

// seekCount goes to right after the to-th event: on from here, or again
// from the start if it has been played.
func (p *Player) seekCount(pl *playing, to, played int64, fn func([]event.Event) error) (*playing, error) {
	if to <= played {
		return p.restart(pl, fn, func(pl *playing) { pl.upto = to })
	}
	pl.stopSeeking()
	pl.upto = to
	p.setSeeking()
	return pl, nil
}

// restart starts a new pass from the capture's start, seeking as set.
func (p *Player) restart(pl *playing, fn func([]event.Event) error, seek func(*playing)) (*playing, error) {
	if err := p.flush(pl, fn); err != nil {
		return pl, err
	}
	pl.r.Close()
	if p.onReset != nil {
		p.onReset()
	}
	np, err := p.open()
	if err != nil {
		// Keep a reader to close: the old one, closed twice is harmless.
		return pl, err
	}
	seek(np)
	p.setSeeking()
	return np, nil
}

// index counts the events the filter keeps and the refused syscalls among
// them, and reads the last one's time, in a pass of its own.
func (p *Player) index(ctx context.Context) {
	r, err := Open(p.path)
	if err != nil {
		return
	}
	defer r.Close()
	var n int64
	var refused int
	var ev event.Event
	var last time.Time
	var fails []int64
	whole := true
	for ctx.Err() == nil {
		if err := p.next(r, &ev); err != nil {
			if !errors.Is(err, io.EOF) {
				return // the playing pass says what stopped it
			}
			p.mu.Lock()
			p.pos.Total, p.pos.Last, p.pos.Refused = n, last, refused
			if whole {
				p.fails, p.indexed = fails, true
			}
			p.mu.Unlock()
			return
		}
		n++
		last = ev.Time
		if IsFailure(&ev) {
			refused++
			if whole = whole && len(fails) < maxIndexedFailures; whole {
				fails = append(fails, n)
			}
		}
	}
}
