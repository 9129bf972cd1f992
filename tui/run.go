// Package tui is twtrace's live terminal UI: which port is blocked, by
// whom, and when its TIME_WAIT sockets end.
//
// It reads two things: the socket table (tracer/table), queried a few times
// per second off the UI's goroutine, and the event stream, which the feed
// hands over in batches that the UI collects once per tick. It never
// applies events to the table: the feed does, before handing them over, so
// that live tracing and a replayed capture look the same to the UI.
//
// Views: Ports (one row per local port), Sockets (like ss -tanp -o, with a
// socket's timeline on enter), Events (the log) and Remotes (TIME_WAIT per
// remote endpoint against the local port range: port exhaustion).
package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/twtrace/twtrace/tracer/event"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"

	"github.com/twtrace/twtrace/tracer/kstat"
	"github.com/twtrace/twtrace/tracer/table"
)

// ---------------------------------------------------------------- COMMANDS

// Feed is where the TUI gets its data: live tracing or a replayed capture.
type Feed interface {
	// Table is the socket table the feed keeps up to date. The feed applies
	// each batch to it before handing the batch to fn.
	Table() *table.Table
	// Run delivers event batches to fn until ctx ends; fn must not keep the slice.
	Run(ctx context.Context, fn func([]event.Event) error) error
}

// Options configure the UI. The zero value works.
type Options struct {
	Title  string // product name in the header; "twtrace" when empty
	Host   string // host name, shown in the header
	Kernel string // kernel release, shown in the header
	// Scope is what the feed keeps, when not everything: the command
	// line's filters (event.Filter.String), shown in the header. The
	// view's own filter (/) narrows what it shows within it.
	Scope string

	// Clock is the UI's "now": countdowns, ages and rates. nil: time.Now.
	// A replay passes the capture's clock; tests pass a fixed one.
	Clock func() time.Time
	// WallClock is the time that passes for the UI itself: when a query is
	// due, what it cost. nil: time.Now. It differs from Clock in a replay,
	// whose Clock is the capture's.
	WallClock func() time.Time
	// Location of the times shown; nil: time.Local.
	Location *time.Location

	// Rates gives the kernel's TIME_WAIT counter rates (session.Session.Rates),
	// false until there are two readings; they (TW/s, TWKilled/s) go in the
	// header. nil: not shown. It is called off the UI goroutine, at most once
	// a second.
	Rates func() (kstat.Rates, bool)
	// Sysctls reads a network namespace's sysctls, for the diagnosis of a
	// refused syscall and the Advice view (the fixes name their current
	// values); nil for one it cannot read. It runs off the UI goroutine.
	// nil: unknown.
	Sysctls func(netns uint32) *kstat.Sysctls
	// PortRange is net.ipv4.ip_local_port_range, against which the Remotes
	// view measures exhaustion. Zero: the kernel's default, 32768-60999.
	PortRange [2]int
	// HostNetNS is the inode of the host's network namespace
	// (session.Session.HostNetNS, a capture's header): its sockets need no
	// netns column. 0: not known, every namespace is shown.
	HostNetNS uint32
	// Degraded lists what the feed traces without, one sentence each
	// (tracer.Tracer.Degraded); the header counts them, in warning colours.
	Degraded []string

	// KeyMap is the keys; nil: DefaultKeyMap. The UI works on its own copy.
	KeyMap *KeyMap
	// Styles builds the styles for a dark or a light terminal background,
	// detected when the UI starts (dark until the terminal answers); nil:
	// DefaultStyles.
	Styles func(dark bool) *Styles

	// Logger receives the UI's own diagnostics. It must not write to the
	// terminal the UI draws on (use a file). nil: discarded.
	Logger *slog.Logger

	LogSize     int           // events kept for the log; 0: 2000, at most MaxLogSize
	PendingSize int           // events buffered between ticks; 0: 16384
	Tick        time.Duration // how often the UI collects events and redraws; 0: 200 ms

	// Input and Output default to the terminal (stdin and stdout).
	Input  io.Reader
	Output io.Writer
	// Profile forces a colour profile (tests pin one). Unknown: detected
	// from the terminal, NO_COLOR honoured.
	Profile colorprofile.Profile
}

// Defaults.
const (
	DefaultLogSize     = 2000
	MaxLogSize         = 50000 // about 11 MiB of events, twice that while paused
	DefaultPendingSize = 16384
	DefaultTick        = 200 * time.Millisecond
)

// withDefaults fills in what the caller left zero.
func (o Options) withDefaults() Options {
	if o.Title == "" {
		o.Title = "twtrace"
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.WallClock == nil {
		o.WallClock = time.Now
	}
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.PortRange == [2]int{} {
		o.PortRange = [2]int{32768, 60999}
	}
	if o.KeyMap == nil {
		o.KeyMap = DefaultKeyMap()
	}
	if o.Styles == nil {
		o.Styles = DefaultStyles
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.LogSize <= 0 {
		o.LogSize = DefaultLogSize
	}
	o.LogSize = min(o.LogSize, MaxLogSize)
	if o.PendingSize <= 0 {
		o.PendingSize = DefaultPendingSize
	}
	if o.Tick <= 0 {
		o.Tick = DefaultTick
	}
	return o
}

// Run runs the UI on the terminal until the user quits or ctx ends, with the
// feed running beside it. It returns the feed's error, if the feed failed,
// or the UI's.
func Run(ctx context.Context, feed Feed, opts Options) error {
	return run(ctx, feed, opts, func(m Model) tea.Model { return m })
}

func run(ctx context.Context, feed Feed, opts Options, wrap func(Model) tea.Model) error {
	opts = opts.withDefaults()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	m, wait := attach(ctx, feed, opts)
	err := runProgram(tea.NewProgram(wrap(m), programOptions(ctx, opts)...), opts.Logger)
	cancel()
	feedErr := wait()

	var pe panicError
	switch {
	case errors.As(err, &pe):
	case errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil:
		err = nil // ended by the caller's context: not a failure of the UI
	case err != nil:
		err = fmt.Errorf("terminal UI: %w", err)
	}
	if feedErr != nil && !errors.Is(feedErr, context.Canceled) {
		return errors.Join(feedErr, err)
	}
	return err
}

// panicError is a panic of the UI, with the terminal restored.
type panicError struct{ value any }

func (e panicError) Error() string {
	return fmt.Sprintf("internal error in the live view: %v", e.value)
}

// runProgram runs the program. A panic in the UI's loop (Update, View, or a
// query, which re-panics there: see safeCmd) restores the terminal and
// becomes an error of one line; bubbletea's own handler would print the
// stack over the terminal. The stack goes to the logger.
func runProgram(p *tea.Program, log *slog.Logger) (err error) {
	defer func() {
		if r := recover(); r != nil {
			p.Kill()
			log.Error("live view panicked", "panic", r, "stack", string(debug.Stack()))
			err = panicError{r}
		}
	}()
	_, err = p.Run()
	return err
}

// cmdPanic carries a panic of a command's goroutine to the UI's loop, where
// runProgram handles it: a panic left on that goroutine would end the
// process with the terminal in raw mode.
type cmdPanic struct {
	value any
	stack []byte
}

// safeCmd runs a command's work so that a panic in it reaches the UI's loop.
func safeCmd(fn func() tea.Msg) tea.Cmd {
	return func() (msg tea.Msg) {
		defer func() {
			if r := recover(); r != nil {
				msg = cmdPanic{r, debug.Stack()}
			}
		}()
		return fn()
	}
}

// attach returns a model fed by feed, whose Run it starts on its own
// goroutine until ctx ends; wait waits for it and returns its error.
func attach(ctx context.Context, feed Feed, opts Options) (m Model, wait func() error) {
	m = NewModel(feed.Table(), opts)
	m.pending = newPending(m.opts.PendingSize)
	p, log := m.pending, m.log
	if pl, ok := feed.(Player); ok {
		m.player = pl
		pl.OnReset(p.reset)
		m.readPosition()
		m.speed = m.pos.Speed
		m.settle()
	}
	var feedErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		feedErr = runFeed(ctx, feed, p, log)
		p.finish(feedErr)
	}()
	return m, func() error {
		<-done
		return feedErr
	}
}

// runFeed runs the feed, turning a panic into an error: a panic on this
// goroutine would kill the process with the terminal left in raw mode.
func runFeed(ctx context.Context, feed Feed, p *pending, log *slog.Logger) (err error) {
	defer func() {
		if r := recover(); r != nil {
			log.Error("feed panicked", "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("feed panicked: %v", r)
		}
	}()
	err = feed.Run(ctx, p.add)
	if err != nil && ctx.Err() == nil {
		log.Error("feed stopped", "err", err)
	}
	return err
}

func programOptions(ctx context.Context, opts Options) []tea.ProgramOption {
	po := []tea.ProgramOption{tea.WithContext(ctx), tea.WithoutCatchPanics()}
	if opts.Input != nil {
		po = append(po, tea.WithInput(opts.Input))
	}
	if opts.Output != nil {
		po = append(po, tea.WithOutput(opts.Output))
	}
	profile := opts.Profile
	if profile == colorprofile.Unknown && os.Getenv("NO_COLOR") != "" {
		// no-color.org: any non-empty value. colorprofile only takes
		// values strconv.ParseBool accepts.
		profile = colorprofile.ASCII
	}
	if profile != colorprofile.Unknown {
		po = append(po, tea.WithColorProfile(profile))
	}
	return po
}
