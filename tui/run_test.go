package tui

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twtrace/twtrace/tracer/event"

	"github.com/twtrace/twtrace/tracer/kstat"
	"github.com/twtrace/twtrace/tracer/table"
)

// funcFeed is a feed made of a function.
type funcFeed struct {
	tab *table.Table
	run func(ctx context.Context, fn func([]event.Event) error) error
}

func (f funcFeed) Table() *table.Table { return f.tab }
func (f funcFeed) Run(ctx context.Context, fn func([]event.Event) error) error {
	return f.run(ctx, fn)
}

// runOn runs Run on a fake terminal: keys are typed into in.
func runOn(ctx context.Context, feed Feed) (in *io.PipeWriter, done chan error) {
	r, w := io.Pipe()
	done = make(chan error, 1)
	opts := testOptions()
	opts.Input, opts.Output = r, io.Discard
	go func() { done <- Run(ctx, feed, opts) }()
	return w, done
}

func wait(t *testing.T, done chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}

func TestRunEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	in, done := runOn(ctx, newSampleFeed())
	defer in.Close()
	time.Sleep(100 * time.Millisecond)
	cancel()
	if err := wait(t, done); err != nil {
		t.Errorf("Run ended by its context: %v", err)
	}
}

func TestRunQuits(t *testing.T) {
	in, done := runOn(context.Background(), newSampleFeed())
	defer in.Close()
	time.Sleep(100 * time.Millisecond)
	if _, err := in.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, done); err != nil {
		t.Errorf("q: %v", err)
	}
}

func TestRunReturnsTheFeedsError(t *testing.T) {
	boom := errors.New("ring buffer: boom")
	feed := funcFeed{table.New(table.Config{}), func(context.Context, func([]event.Event) error) error {
		return boom
	}}
	in, done := runOn(context.Background(), feed)
	defer in.Close()
	time.Sleep(100 * time.Millisecond) // the UI shows the failure and keeps running
	in.Write([]byte("q"))
	if err := wait(t, done); !errors.Is(err, boom) {
		t.Errorf("Run returned %v, want the feed's error", err)
	}
}

func TestRunSurvivesAFeedPanic(t *testing.T) {
	feed := funcFeed{table.New(table.Config{}), func(context.Context, func([]event.Event) error) error {
		panic("decoder bug")
	}}
	in, done := runOn(context.Background(), feed)
	defer in.Close()
	time.Sleep(100 * time.Millisecond)
	in.Write([]byte("q"))
	if err := wait(t, done); err == nil || !strings.Contains(err.Error(), "feed panicked: decoder bug") {
		t.Errorf("Run returned %v", err)
	}
}

// TestFeedStopShows: a stopped feed is said in the header, in red when it
// failed.
func TestFeedStopShows(t *testing.T) {
	m := headless(t, 100, 30)
	m.pending = newPending(10)
	m.pending.finish(errors.New("tracer detached"))
	m = step(m, tickMsg(testNow))
	requireLine(t, stripView(m), "feed stopped: tracer detached", "09:30:17")
}

// TestKernelRates: TW/s and TWKilled/s from two readings of the counters,
// turned into rates as the session does; "-" until there are two.
func TestKernelRates(t *testing.T) {
	readings := []kstat.Counters{
		{Time: testNow, TW: 1000, TWKilled: 10},
		{Time: testNow.Add(2 * time.Second), TW: 1100, TWKilled: 14},
	}
	var sampler kstat.Sampler
	m := headless(t, 100, 30)
	m.opts.Rates = func() (kstat.Rates, bool) {
		c := readings[0]
		readings = readings[1:]
		return sampler.Add(c)
	}
	m = m.Refresh()
	requireLine(t, stripView(m), "TW/s -", "TWKilled/s -")
	m.refresh.counters = time.Time{} // due again at once
	m = m.Refresh()
	requireLine(t, stripView(m), "TW/s 50", "TWKilled/s 2.0")
}

func TestKernelRatesGiven(t *testing.T) {
	m := headless(t, 100, 30)
	m.opts.Rates = func() (kstat.Rates, bool) {
		return kstat.Rates{TW: 12.5, TWKilled: 0, TCPTimeWaitOverflow: 3}, true
	}
	m = m.Refresh()
	requireLine(t, stripView(m), "TW/s 13", "TWKilled/s 0", "TW overflow/s 3.0")
}

// Headless runs the model on the feed without a terminal, and ends with its
// context; a feed's failure comes back.
func TestHeadless(t *testing.T) {
	f := newSampleFeed()
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	if err := Headless(ctx, f, Options{Tick: 50 * time.Millisecond}); err != nil {
		t.Fatalf("Headless: %v", err)
	}
	boom := errors.New("boom")
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	err := Headless(ctx2, failingFeed{f.tab, boom}, Options{Tick: 50 * time.Millisecond})
	if !errors.Is(err, boom) {
		t.Fatalf("Headless with a failing feed: %v, want boom", err)
	}
	if ctx2.Err() != nil {
		t.Fatal("Headless waited for its context instead of ending with the feed")
	}
}

type failingFeed struct {
	tab *table.Table
	err error
}

func (f failingFeed) Table() *table.Table { return f.tab }

func (f failingFeed) Run(context.Context, func([]event.Event) error) error { return f.err }

// A panic of the UI, in its loop or in a query's goroutine, restores the
// terminal (the alternate screen is left, the cursor shown) and comes back
// as one error, instead of ending the process in raw mode.
func TestRunRestoresTheTerminalOnPanic(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(o *Options)
	}{
		{"in Update", func(o *Options) {
			calls := 0
			o.Clock = func() time.Time {
				if calls++; calls > 3 {
					panic("clock bug")
				}
				return testNow
			}
		}},
		{"in a query", func(o *Options) {
			calls := 0
			o.Rates = func() (kstat.Rates, bool) {
				if calls++; calls > 1 { // the second reading: the view is up
					panic("rates bug")
				}
				return kstat.Rates{}, false
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, w := io.Pipe()
			defer w.Close()
			var out syncBuffer
			opts := testOptions()
			opts.Input, opts.Output = r, &out
			tc.mutate(&opts)
			done := make(chan error, 1)
			go func() { done <- Run(context.Background(), newSampleFeed(), opts) }()
			err := wait(t, done)
			if err == nil || !strings.HasPrefix(err.Error(), "internal error in the live view: ") ||
				!strings.Contains(err.Error(), "bug") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Run returned %v, want one line naming the panic", err)
			}
			screen := out.String()
			enter, leave := strings.LastIndex(screen, "\x1b[?1049h"), strings.LastIndex(screen, "\x1b[?1049l")
			hide, show := strings.LastIndex(screen, "\x1b[?25l"), strings.LastIndex(screen, "\x1b[?25h")
			if enter < 0 || leave < enter || show < hide {
				t.Errorf("terminal not restored: alternate screen entered at %d, left at %d, cursor hidden at %d, shown at %d; output ends %q",
					enter, leave, hide, show, screen[max(0, len(screen)-80):])
			}
		})
	}
}

// What the feed traces without is marked in the header.
func TestDegradedMark(t *testing.T) {
	m := headless(t, 120, 30)
	if strings.Contains(stripView(m), "degraded") {
		t.Fatal("a feed with nothing degraded is marked")
	}
	m.opts.Degraded = []string{"continuing without bind/connect/listen events: because"}
	requireLine(t, stripView(m), "TIME_WAIT 2", "degraded 1")
}

// syncBuffer is a bytes.Buffer for a writer and a reader on two goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
