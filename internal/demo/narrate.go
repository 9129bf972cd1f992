package demo

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/twtrace/twtrace/tracer/advice"
	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/stream"
	"github.com/twtrace/twtrace/tracer/table"
	"github.com/twtrace/twtrace/tracer/text"
)

// LineKind says what a line of narration is.
type LineKind uint8

// Kinds of lines.
const (
	LineTitle   LineKind = iota // a lesson begins: Text is its name and summary
	LineStep                    // a step begins: Text says what it does
	LineSay                     // an explanation of what was just observed
	LineEvent                   // an event the tracer observed: Event
	LineVerdict                 // what `twtrace why` says: Report, Text the command
	LineFinding                 // what the advisor says: Finding
	LineDone                    // the lesson's conclusion
)

// Line is one line of a lesson's narration. A view that follows the lesson
// (the live view) finds its key socket in Event, on the lesson's Port.
type Line struct {
	Kind    LineKind
	Lesson  string
	Step    int
	Port    uint16 // the port the lesson is about
	Text    string
	Event   *event.Event
	Report  *advice.PortReport
	Finding *advice.Finding
}

// Narrator shows a lesson as it runs.
type Narrator interface {
	Show(Line) error
	// Pause waits, with --step, for the go-ahead to the next step.
	Pause(ctx context.Context) error
	// Countdown shows the time left until a TIME_WAIT ends, until ended is
	// closed (the tracer saw it end); skip is true when the person asked
	// to end it now instead.
	Countdown(ctx context.Context, until time.Time, ended <-chan struct{}) (skip bool, err error)
}

// Viewer is a Narrator that also shows the lesson's sockets and events
// (the live view). Watch is called once the lesson's tracer runs, before
// the first step, with its socket table and namespace; the engine hands the
// returned sink every batch of events (on the tracer's goroutine, already
// applied to the table: the sink must not keep the slice). Done is called
// when the lesson is over and its namespace gone, with why it failed (nil
// if it did not), and returns once the person has seen the end.
type Viewer interface {
	Narrator
	Watch(tab *table.Table, netns uint32) (sink func([]event.Event), err error)
	Done(ctx context.Context, err error)
}

// TextOptions configure a TextNarrator.
type TextOptions struct {
	Color bool // ANSI colours: failures red, TIME_WAIT yellow, steps bold
	// Terminal: the output is a terminal, where the countdown rewrites one
	// line; elsewhere it prints a line every 10 s.
	Terminal bool
	Step     bool      // pause before each step until a line comes from Keys
	Keys     io.Reader // where the go-ahead comes from (stdin); nil: none
	// KeysTerminal: Keys is a terminal, so Enter also ends a countdown.
	KeysTerminal bool
	Location     *time.Location // of the times quoted; nil: local
}

// TextNarrator narrates to a stream: `twtrace demo --text`.
type TextNarrator struct {
	w        io.Writer
	opt      TextOptions
	keysOnce sync.Once
	keys     chan struct{}
}

// NewTextNarrator returns a narrator that writes to w.
func NewTextNarrator(w io.Writer, opt TextOptions) *TextNarrator {
	if opt.Location == nil {
		opt.Location = time.Local
	}
	return &TextNarrator{w: w, opt: opt}
}

const (
	ansiBold = "\x1b[1m"
	ansiOff  = "\x1b[0m"
	indent   = "   "
)

// Show writes one line of narration (a verdict or finding takes several).
func (t *TextNarrator) Show(l Line) error {
	var b strings.Builder
	switch l.Kind {
	case LineTitle:
		fmt.Fprintf(&b, "%s\n", t.paint(ansiBold, "twtrace demo "+l.Lesson+": "+l.Text))
	case LineStep:
		fmt.Fprintf(&b, "\n%s\n", t.paint(ansiBold, fmt.Sprintf("%d. %s", l.Step, l.Text)))
	case LineSay:
		fmt.Fprintf(&b, "%s%s\n", indent, l.Text)
	case LineEvent:
		b.WriteString(t.quote(l.Event))
	case LineVerdict:
		fmt.Fprintf(&b, "%s$ %s\n", indent, l.Text)
		if err := stream.WriteVerdict(&b, l.Report, indent+"  ", t.opt.Color); err != nil {
			return err
		}
		if len(l.Report.Fixes) > 0 {
			fmt.Fprintf(&b, "%s  first fix: %s\n", indent, l.Report.Fixes[0].Text)
		}
	case LineFinding:
		f := l.Finding
		fmt.Fprintf(&b, "%s$ %s\n%s  %s %s\n", indent, l.Text, indent, t.paint(ansiBold, f.Code), f.Summary)
		if len(f.Fixes) > 0 {
			fmt.Fprintf(&b, "%s  first fix: %s\n", indent, f.Fixes[0].Text)
		}
		for _, nf := range f.NotFixes {
			fmt.Fprintf(&b, "%s  not a fix: %s\n", indent, nf)
		}
	case LineDone:
		fmt.Fprintf(&b, "\n%s %s\n", t.paint(ansiBold, "What it shows:"), l.Text)
	}
	_, err := io.WriteString(t.w, b.String())
	return err
}

func (t *TextNarrator) paint(code, s string) string {
	if !t.opt.Color {
		return s
	}
	return code + s + ansiOff
}

// Widths of a quoted event's columns: an owner such as "12345 old-server"
// and an endpoint such as "127.0.0.1:40015".
const (
	wOwner = 18
	wAddr  = 16
)

// quote renders an observed event with the columns of the one renderer of
// events (package text): time, owner, local, remote, what and detail.
func (t *TextNarrator) quote(ev *event.Event) string {
	b := []byte(indent + "> ")
	color := ""
	if t.opt.Color {
		color = stream.Colour(ev)
	}
	b = append(b, color...)
	for _, c := range []struct {
		col text.Column
		w   int
	}{{text.ColTime, 12}, {text.ColOwner, wOwner}, {text.ColLocal, wAddr}, {text.ColRemote, wAddr}} {
		s := len(b)
		b = text.AppendColumn(b, ev, c.col, t.opt.Location)
		for len(b)-s < c.w {
			b = append(b, ' ')
		}
		b = append(b, ' ')
	}
	b = text.AppendSummary(b, ev)
	if color != "" {
		b = append(b, ansiOff...)
	}
	return string(append(b, '\n'))
}

// keyPresses starts, once, reading lines from Keys: each line is a key
// press. The channel closes at the end of Keys.
func (t *TextNarrator) keyPresses() <-chan struct{} {
	if t.opt.Keys == nil {
		return nil
	}
	t.keysOnce.Do(func() {
		t.keys = make(chan struct{}, 16)
		go func() {
			defer close(t.keys)
			r := bufio.NewReader(t.opt.Keys)
			for {
				if _, err := r.ReadString('\n'); err != nil {
					return
				}
				t.keys <- struct{}{}
			}
		}()
	})
	return t.keys
}

// Pause waits for a line from Keys, with --step. At the end of Keys it
// stops pausing.
func (t *TextNarrator) Pause(ctx context.Context) error {
	keys := t.keyPresses()
	if !t.opt.Step || keys == nil {
		return nil
	}
	if t.opt.KeysTerminal {
		fmt.Fprintf(t.w, "%s%s", indent, t.paint(ansiBold, "[Enter: next step]"))
	}
	select {
	case _, ok := <-keys:
		if !ok {
			t.opt.Step = false
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	if t.opt.KeysTerminal {
		fmt.Fprint(t.w, "\r\x1b[K")
	}
	return nil
}

// Countdown shows the time left: on a terminal one line rewritten ten
// times a second (Enter on a terminal ends the wait), elsewhere a line
// every 10 s.
func (t *TextNarrator) Countdown(ctx context.Context, until time.Time, ended <-chan struct{}) (bool, error) {
	var keys <-chan struct{}
	hint := ""
	if t.opt.KeysTerminal {
		keys = t.keyPresses()
		hint = " (Enter ends it now)"
	drain:
		for {
			select {
			case <-keys:
			default:
				break drain
			}
		}
	}
	every := 10 * time.Second
	if t.opt.Terminal {
		every = 100 * time.Millisecond
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		left := time.Until(until)
		if t.opt.Terminal {
			fmt.Fprintf(t.w, "\r%sTIME_WAIT ends in %s%s\x1b[K", indent, text.Countdown(left), hint)
		} else {
			fmt.Fprintf(t.w, "%sTIME_WAIT ends in %s\n", indent, text.Countdown(left))
		}
		select {
		case <-ended:
			t.clearLine()
			return false, nil
		case _, ok := <-keys:
			if ok {
				t.clearLine()
				return true, nil
			}
			keys = nil
		case <-ctx.Done():
			t.clearLine()
			return false, ctx.Err()
		case <-tick.C:
		}
	}
}

func (t *TextNarrator) clearLine() {
	if t.opt.Terminal {
		fmt.Fprint(t.w, "\r\x1b[K")
	}
}
