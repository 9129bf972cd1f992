package capture

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/twtrace/twtrace/internal/sample"
	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/table"
)

// playCapture writes n events, one a millisecond, every tenth a refused
// bind() (and the refused syscalls of the sample's stream), to a capture
// file; it returns its path and the events.
func playCapture(t *testing.T, n int) (string, []event.Event) {
	return playCaptureAt(t, n, "cap.jsonl.zst")
}

// failures are the Played counts right after each refused syscall.
func failures(evs []event.Event) []int64 {
	var out []int64
	for i := range evs {
		if IsFailure(&evs[i]) {
			out = append(out, int64(i+1))
		}
	}
	return out
}

func playCaptureAt(t *testing.T, n int, name string) (string, []event.Event) {
	t.Helper()
	evs := stream(n)
	for i := range evs {
		evs[i].Time = sample.Start.Add(time.Duration(i+1) * time.Millisecond)
		if i%10 == 9 {
			evs[i] = event.Event{Kind: event.KindBind, Time: evs[i].Time, PID: 4300, Comm: event.MakeComm("nginx"),
				NetNS: 4026531840, Family: event.FamilyIPv4, Src: sample.Events()[0].Src, FD: 6, Ret: -98}
		}
	}
	path := filepath.Join(t.TempDir(), name)
	if err := WriteFile(path, testHeader(), Options{}, evs); err != nil {
		t.Fatal(err)
	}
	return path, comparable(evs)
}

// view is what a live view would have been given: the events since the
// last reset, and how many resets.
type view struct {
	mu     sync.Mutex
	evs    []event.Event
	resets int
}

func (v *view) feed(b []event.Event) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.evs = append(v.evs, b...)
	return nil
}

func (v *view) reset() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.evs, v.resets = nil, v.resets+1
}

func (v *view) got() ([]event.Event, int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]event.Event(nil), v.evs...), v.resets
}

// started runs a player on path until the test ends.
func started(t *testing.T, p *Player, v *view) {
	t.Helper()
	p.OnReset(v.reset)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, v.feed) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v, want the context's end", err)
		}
	})
}

// settle waits until the player's position satisfies ok, and a little
// longer to see it stays there.
func settle(t *testing.T, p *Player, what string, ok func(Position) bool) Position {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if pos := p.Position(); ok(pos) {
			time.Sleep(20 * time.Millisecond)
			if pos2 := p.Position(); pos2 == pos {
				return pos
			}
			continue
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("%s: the player is at %+v", what, p.Position())
	return Position{}
}

// wantPlayed checks the view has exactly the first n events.
func wantPlayed(t *testing.T, v *view, evs []event.Event, n, resets int) {
	t.Helper()
	got, r := v.got()
	if len(got) != n || n > 0 && !reflect.DeepEqual(got, evs[:n]) {
		t.Errorf("the view has %d events, want the first %d", len(got), n)
	}
	if r != resets {
		t.Errorf("the view was reset %d times, want %d", r, resets)
	}
}

func TestPlayerControls(t *testing.T) {
	path, evs := playCapture(t, 100)
	fails := failures(evs)
	if len(fails) < 10 || fails[0] < 3 {
		t.Fatalf("the capture's refused syscalls are after events %v", fails)
	}
	p, err := NewPlayer(path, nil, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	v := &view{}
	p.Control(PlayControl{Op: PlayPause}) // before Run: paused before the first event
	started(t, p, v)

	pos := settle(t, p, "paused at the start", func(p Position) bool { return p.Paused && p.Total == 100 })
	if pos.Played != 0 || !pos.Time.Equal(testHeader().Started) || pos.Refused != len(fails) || !pos.Last.Equal(evs[99].Time) {
		t.Errorf("at the start: %+v", pos)
	}
	wantPlayed(t, v, evs, 0, 0)

	p.Control(PlayControl{Op: PlayStep})
	p.Control(PlayControl{Op: PlayStep})
	settle(t, p, "two steps", func(p Position) bool { return p.Played == 2 && p.Paused })
	wantPlayed(t, v, evs, 2, 0)

	p.Control(PlayControl{Op: PlayNextFailure})
	pos = settle(t, p, "the first failure", func(p Position) bool { return p.Played == fails[0] && p.Paused && !p.Seeking })
	if !pos.Time.Equal(evs[fails[0]-1].Time) || pos.Failed != 1 {
		t.Errorf("at the first failure: %+v", pos)
	}
	p.Control(PlayControl{Op: PlayNextFailure})
	settle(t, p, "the second failure", func(p Position) bool { return p.Played == fails[1] && p.Paused && !p.Seeking })
	wantPlayed(t, v, evs, int(fails[1]), 0)

	// Back to the one before: again from the start, up to it.
	p.Control(PlayControl{Op: PlayPrevFailure})
	pos = settle(t, p, "back to the first failure", func(p Position) bool { return p.Played == fails[0] && !p.Seeking })
	wantPlayed(t, v, evs, int(fails[0]), 1)
	if pos.Failed != 1 || !pos.Paused {
		t.Errorf("back at the first failure: %+v", pos)
	}
	p.Control(PlayControl{Op: PlayPrevFailure}) // none before it: stays
	settle(t, p, "no failure before the first", func(p Position) bool { return p.Played == fails[0] })
	wantPlayed(t, v, evs, int(fails[0]), 1)

	// Forward to a time: everything before it, paused there.
	p.Control(PlayControl{Op: PlaySeek, At: evs[42].Time})
	pos = settle(t, p, "seek forward", func(p Position) bool { return p.Played == 42 && !p.Seeking })
	wantPlayed(t, v, evs, 42, 1)
	if !pos.Time.Equal(evs[42].Time) || !pos.Paused {
		t.Errorf("after seeking to event 42's time: %+v", pos)
	}
	// To a time between two events, backwards.
	p.Control(PlayControl{Op: PlaySeek, At: evs[3].Time.Add(-time.Microsecond)})
	pos = settle(t, p, "seek back", func(p Position) bool { return p.Played == 3 && !p.Seeking })
	wantPlayed(t, v, evs, 3, 2)
	if !pos.Time.Equal(evs[3].Time.Add(-time.Microsecond)) {
		t.Errorf("after seeking back: clock %v, want the time sought", pos.Time)
	}

	// As fast as possible, resumed: to the end.
	p.Control(PlayControl{Op: PlaySpeed, Speed: 0})
	p.Control(PlayControl{Op: PlayPause})
	pos = settle(t, p, "the end", func(p Position) bool { return p.AtEnd })
	wantPlayed(t, v, evs, 100, 2)
	if pos.Played != 100 || pos.Failed != len(fails) || pos.Paused || pos.Speed != 0 {
		t.Errorf("at the end: %+v", pos)
	}
	// A step at the end plays nothing; a seek back still works.
	p.Control(PlayControl{Op: PlayStep})
	p.Control(PlayControl{Op: PlaySeek, At: evs[50].Time})
	settle(t, p, "seek back from the end", func(p Position) bool { return p.Played == 50 && !p.AtEnd && !p.Seeking })
	wantPlayed(t, v, evs, 50, 3)
	if p.Cut() != nil {
		t.Errorf("a closed capture is cut: %v", p.Cut())
	}
}

// The table at any position is the one the events up to it build.
func TestPlayerTable(t *testing.T) {
	path, evs := playCapture(t, 300)
	p, err := NewPlayer(path, nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Control(PlayControl{Op: PlayPause})
	started(t, p, &view{})
	for _, n := range []int{250, 120, 121, 7} {
		p.Control(PlayControl{Op: PlaySeek, At: evs[n].Time})
		settle(t, p, "seek", func(p Position) bool { return p.Played == int64(n) && !p.Seeking })
		want := table.New(table.Config{})
		for i := range evs[:n] {
			want.Apply(&evs[i], nil)
		}
		q := table.Query{IncludeClosed: true}
		gs, gn := p.Table().Sockets(q, evs[n].Time)
		ws, wn := want.Sockets(q, evs[n].Time)
		if gn != wn || !reflect.DeepEqual(gs, ws) {
			t.Errorf("at event %d the table has %d sockets, want %d", n, gn, wn)
		}
	}
}

// A filter applies to what is played and to what is counted.
func TestPlayerFilter(t *testing.T) {
	path, evs := playCapture(t, 100)
	flt := &event.Filter{}
	flt.Kinds = []event.Kind{event.KindBind}
	var binds []event.Event
	for _, ev := range evs {
		if flt.Match(&ev) {
			binds = append(binds, ev)
		}
	}
	p, err := NewPlayer(path, flt, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	v := &view{}
	started(t, p, v)
	pos := settle(t, p, "the end", func(p Position) bool { return p.AtEnd && p.Total >= 0 })
	if pos.Total != int64(len(binds)) || pos.Played != pos.Total || pos.Refused != len(failures(binds)) {
		t.Errorf("filtered: %+v, want %d events", pos, len(binds))
	}
	wantPlayed(t, v, binds, len(binds), 0)
}

// Paced: paused, nothing plays; resumed, a 500 s gap at speed 1000 takes
// 500 ms from the resume.
func TestPlayerPaced(t *testing.T) {
	_, evs := playCapture(t, 30)
	for i := 20; i < 30; i++ {
		evs[i].Time = evs[i].Time.Add(500 * time.Second)
	}
	path := filepath.Join(t.TempDir(), "paced.jsonl")
	if err := WriteFile(path, testHeader(), Options{}, evs); err != nil {
		t.Fatal(err)
	}
	p, err := NewPlayer(path, nil, 1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	v := &view{}
	started(t, p, v)
	settle(t, p, "the first 20", func(p Position) bool { return p.Played == 20 })
	p.Control(PlayControl{Op: PlayPause})
	settle(t, p, "paused", func(p Position) bool { return p.Paused })
	time.Sleep(700 * time.Millisecond) // longer than the gap takes
	if n := p.Position().Played; n != 20 {
		t.Fatalf("paused, the player went on from 20 to %d events", n)
	}
	resumed := time.Now()
	p.Control(PlayControl{Op: PlayPause})
	settle(t, p, "the end", func(p Position) bool { return p.AtEnd })
	if el := time.Since(resumed); el < 450*time.Millisecond || el > 5*time.Second {
		t.Errorf("a 500 s gap at speed 1000 took %v from the resume, want about 500 ms", el)
	}
	wantPlayed(t, v, evs, 30, 0)
}

// A cut capture plays to its last whole event and says so.
func TestPlayerCut(t *testing.T) {
	path, evs := playCaptureAt(t, 100, "cap.jsonl")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut.jsonl")
	if err := os.WriteFile(cut, raw[:len(raw)*2/3], 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := NewPlayer(cut, nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	v := &view{}
	started(t, p, v)
	pos := settle(t, p, "the end", func(p Position) bool { return p.AtEnd && p.Total >= 0 })
	var ce *CutError
	if !errors.As(p.Cut(), &ce) {
		t.Fatalf("Cut() = %v, want a *CutError", p.Cut())
	}
	if pos.Played == 0 || pos.Played != pos.Total || pos.Played >= 100 {
		t.Errorf("cut: %+v", pos)
	}
	wantPlayed(t, v, evs, int(pos.Played), 0)
}

func TestSpeedSteps(t *testing.T) {
	s := 1.0
	var up []float64
	for range 12 {
		s = Faster(s)
		up = append(up, s)
	}
	if up[9] != MaxSpeed || up[10] != 0 || up[11] != 0 {
		t.Errorf("faster from 1: %v", up)
	}
	s = 0
	for range 20 {
		s = Slower(s)
	}
	if s != MinSpeed {
		t.Errorf("slower, 20 times from as fast as possible: %v", s)
	}
	if Slower(0) != MaxSpeed {
		t.Errorf("slower than as fast as possible: %v", Slower(0))
	}
	for _, c := range []struct{ in, want float64 }{{-1, 1}, {0, 0}, {1e9, MaxSpeed}, {0.001, MinSpeed}, {3, 3}} {
		if got := clampSpeed(c.in); got != c.want {
			t.Errorf("clampSpeed(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
