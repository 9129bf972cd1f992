package demo

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"

	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/table"
	"github.com/twtrace/twtrace/tui"
)

// LiveOptions configure a LiveNarrator.
type LiveOptions struct {
	Step bool // wait for space before each step
	// Input and Output are the terminal's (nil: stdin and stdout); tests
	// pass pipes.
	Input    io.Reader
	Output   io.Writer
	Profile  colorprofile.Profile // forced colour profile; Unknown: detected
	Location *time.Location
	Logger   *slog.Logger // the live view's diagnostics, never the terminal
}

// LiveNarrator narrates in a pane beside the live view of the lesson's
// namespace (package tui): its Sockets view follows the socket the
// narration talks about, with that socket's row selected. Space answers
// --step, ends a countdown early, and closes a finished lesson; q or
// ctrl+c ends the demo (the lesson's namespace and processes go, as
// after a signal).
type LiveNarrator struct {
	opt    LiveOptions
	ctx    context.Context
	cancel context.CancelFunc // the person quit: the lessons end

	run  *liveRun       // the lesson on screen
	mu   sync.Mutex     //
	wg   sync.WaitGroup // the programs' goroutines
	quit atomic.Bool    // q on a finished lesson: no more lessons
}

// liveRun is one lesson's program.
type liveRun struct {
	feed     *liveFeed
	msgs     chan tea.Msg  // narration to the program, taken as it draws
	keys     chan struct{} // space, while the narration waits for it
	stop     context.CancelFunc
	done     chan struct{} // the program ended
	err      error
	finished atomic.Bool // the lesson is over: q no longer interrupts it
}

// NewLiveNarrator returns a narrator, and the context the lessons must run
// in: it ends when ctx does, or when the person quits.
func NewLiveNarrator(ctx context.Context, opt LiveOptions) (*LiveNarrator, context.Context) {
	if opt.Location == nil {
		opt.Location = time.Local
	}
	ctx, cancel := context.WithCancel(ctx)
	return &LiveNarrator{opt: opt, ctx: ctx, cancel: cancel}, ctx
}

// Watch starts the live view of a lesson's table and events.
func (n *LiveNarrator) Watch(tab *table.Table, netns uint32) (func([]event.Event), error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ctx, stop := context.WithCancel(n.ctx)
	r := &liveRun{feed: &liveFeed{tab: tab}, msgs: make(chan tea.Msg), keys: make(chan struct{}, 1),
		stop: stop, done: make(chan struct{})}
	n.run = r
	opts := tui.Options{Title: "twtrace demo", HostNetNS: netns, Location: n.opt.Location, Logger: n.opt.Logger,
		Input: n.opt.Input, Output: n.opt.Output, Profile: n.opt.Profile}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		r.err = tui.RunWrapped(ctx, r.feed, opts, func(m tui.Model) tea.Model {
			return newLiveModel(m, netns, n.opt.Location, r.msgs, r.keys)
		})
		switch {
		case ctx.Err() != nil: // ended by Done, or by the caller
		case r.finished.Load():
			n.quit.Store(true) // q after the lesson: the demo ends
		default:
			n.cancel() // q during the lesson: it is interrupted
		}
		close(r.done)
	}()
	return r.feed.deliver, nil
}

// current is the lesson on screen.
func (n *LiveNarrator) current() *liveRun {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.run
}

// send hands a message to the program, unless it has ended.
func (n *LiveNarrator) send(msg tea.Msg) error {
	r := n.current()
	if r == nil {
		return errors.New("the live view is not running")
	}
	select {
	case r.msgs <- msg:
		return nil
	case <-r.done:
		return n.ctx.Err()
	case <-n.ctx.Done():
		return n.ctx.Err()
	}
}

// Show adds a line to the narration pane.
func (n *LiveNarrator) Show(l Line) error { return n.send(lineMsg(l)) }

// Pause waits for space, with --step.
func (n *LiveNarrator) Pause(ctx context.Context) error {
	if !n.opt.Step {
		return nil
	}
	return n.await(ctx, awaitStep, nil)
}

// Countdown shows the time left in the pane until ended, or space.
func (n *LiveNarrator) Countdown(ctx context.Context, until time.Time, ended <-chan struct{}) (bool, error) {
	if err := n.send(countdownMsg(until)); err != nil {
		return false, err
	}
	defer n.send(countdownMsg(time.Time{}))
	err := n.await(ctx, awaitCountdown, ended)
	if errors.Is(err, errEnded) {
		return false, nil
	}
	return err == nil, err
}

// errEnded: what was awaited happened by itself.
var errEnded = errors.New("ended")

// await shows what space does now and waits for it (or for ended).
func (n *LiveNarrator) await(ctx context.Context, what awaitMsg, ended <-chan struct{}) error {
	r := n.current()
	if r == nil {
		return errors.New("the live view is not running")
	}
	select {
	case <-r.keys: // a press from before: not an answer to this
	default:
	}
	if err := n.send(what); err != nil {
		return err
	}
	defer n.send(awaitMsg(""))
	select {
	case <-r.keys:
		return nil
	case <-ended:
		return errEnded
	case <-r.done:
		return n.ctx.Err()
	case <-ctx.Done():
		return ctx.Err()
	case <-n.ctx.Done():
		return n.ctx.Err()
	}
}

// Done shows how the lesson ended and waits for space (or q), then ends
// its program.
func (n *LiveNarrator) Done(ctx context.Context, err error) {
	r := n.current()
	if r == nil {
		return
	}
	r.finished.Store(true)
	if ctx.Err() == nil && n.send(overMsg{err}) == nil {
		_ = n.await(ctx, awaitOver, nil)
	}
	r.stop()
	<-r.done
}

// Quit reports whether the person quit after a lesson: no more lessons.
func (n *LiveNarrator) Quit() bool { return n.quit.Load() }

// Close ends the live view, if one runs, and waits for its program.
func (n *LiveNarrator) Close() error {
	n.cancel()
	n.wg.Wait()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.run != nil && n.run.err != nil && !errors.Is(n.run.err, context.Canceled) {
		return n.run.err
	}
	return nil
}

// liveFeed hands the session's batches to the live view (tui.Feed).
type liveFeed struct {
	tab *table.Table
	mu  sync.Mutex
	fn  func([]event.Event) error
}

func (f *liveFeed) Table() *table.Table { return f.tab }

// Run takes fn until ctx ends: deliver calls it.
func (f *liveFeed) Run(ctx context.Context, fn func([]event.Event) error) error {
	f.mu.Lock()
	f.fn = fn
	f.mu.Unlock()
	<-ctx.Done()
	f.mu.Lock()
	f.fn = nil
	f.mu.Unlock()
	return ctx.Err()
}

func (f *liveFeed) deliver(batch []event.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fn != nil {
		_ = f.fn(batch) // the UI's buffer copies; it never fails
	}
}
