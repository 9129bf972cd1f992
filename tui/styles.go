package tui

import (
	"image/color"

	"github.com/twtrace/twtrace/tracer/event"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/textinput"
	"charm.land/lipgloss/v2"

	"github.com/twtrace/twtrace/tui/grid"
)

// ---------------------------------------------------------------- VIEW

// Theme is the palette every style is built from. The default uses the 16
// ANSI colours, which the terminal's own theme maps to its background,
// except where the usual mapping is unreadable on a light one.
type Theme struct {
	Accent color.Color // titles, the active tab
	Good   color.Color // LISTEN, ESTABLISHED
	Warn   color.Color // TIME_WAIT and the sockets on their way to it
	Bad    color.Color // failures, loss
}

// DefaultTheme returns the ANSI palette for a dark or a light background:
// on a light one, cyan and yellow text is too pale to read, so the accent
// is blue and TIME_WAIT a dark orange (256 colours; yellow with 16).
func DefaultTheme(dark bool) Theme {
	if dark {
		return Theme{Accent: lipgloss.Cyan, Good: lipgloss.Green, Warn: lipgloss.Yellow, Bad: lipgloss.Red}
	}
	return Theme{Accent: lipgloss.Blue, Good: lipgloss.Green, Warn: lipgloss.Color("130"), Bad: lipgloss.Red}
}

// DefaultStyles returns the styles of the default theme for a dark or a
// light background.
func DefaultStyles(dark bool) *Styles { return NewStyles(DefaultTheme(dark), dark) }

// Styles holds every style of the UI, built once from a Theme. Meaning
// never rests on colour alone: failures are also bold and marked "!",
// TIME_WAIT is also bold, the cursor is reverse video, so that the UI reads
// the same under NO_COLOR.
type Styles struct {
	Title     lipgloss.Style // product name in the header
	Label     lipgloss.Style // header labels
	Value     lipgloss.Style // header values
	Muted     lipgloss.Style // secondary text, closed sockets
	Accent    lipgloss.Style //
	Bad       lipgloss.Style // failures, loss: red and bold
	Warn      lipgloss.Style //
	Paused    lipgloss.Style // the PAUSED badge
	TabActive lipgloss.Style
	TabIdle   lipgloss.Style
	ViewTitle lipgloss.Style // the line above each view's table
	Section   lipgloss.Style // headings in the socket detail
	Bar       lipgloss.Style // timeline and exhaustion bars

	// States, by event.State; nil entries render plain.
	States [16]*lipgloss.Style

	Grid   grid.Styles
	Help   help.Styles
	Filter textinput.Styles

	// seqs are the escape sequences of each style above, rendered once by
	// NewStyles: lipgloss.Style.Render costs microseconds, and a frame has
	// dozens of styled pieces.
	seqs map[*lipgloss.Style][2]string
}

// paint applies a style to one line of text; a nil style leaves it plain.
// It only reads: a style NewStyles did not render is rendered each time.
func (s *Styles) paint(st *lipgloss.Style, text string) string {
	if st == nil {
		return text
	}
	q, ok := s.seqs[st]
	if !ok {
		q[0], q[1] = grid.SeqOf(*st)
	}
	return q[0] + text + q[1]
}

// NewStyles builds the styles from a theme, for a dark or a light
// background.
func NewStyles(t Theme, dark bool) *Styles {
	s := &Styles{
		Title:     lipgloss.NewStyle().Bold(true).Foreground(t.Accent),
		Label:     lipgloss.NewStyle().Faint(true),
		Value:     lipgloss.NewStyle().Bold(true),
		Muted:     lipgloss.NewStyle().Faint(true),
		Accent:    lipgloss.NewStyle().Foreground(t.Accent),
		Bad:       lipgloss.NewStyle().Bold(true).Foreground(t.Bad),
		Warn:      lipgloss.NewStyle().Foreground(t.Warn),
		Paused:    lipgloss.NewStyle().Bold(true).Reverse(true).Foreground(t.Warn),
		TabActive: lipgloss.NewStyle().Bold(true).Reverse(true).Foreground(t.Accent),
		TabIdle:   lipgloss.NewStyle().Faint(true),
		ViewTitle: lipgloss.NewStyle().Bold(true),
		Section:   lipgloss.NewStyle().Bold(true).Underline(true),
		Bar:       lipgloss.NewStyle().Foreground(t.Warn),
	}
	good := lipgloss.NewStyle().Foreground(t.Good)
	warn := lipgloss.NewStyle().Foreground(t.Warn)
	listen, tw := good.Bold(true), warn.Bold(true)
	s.States[event.StateListen] = &listen
	s.States[event.StateEstablished] = &good
	s.States[event.StateTimeWait] = &tw
	for _, st := range []event.State{event.StateFinWait1, event.StateFinWait2, event.StateClosing,
		event.StateCloseWait, event.StateLastAck} {
		s.States[st] = &warn
	}
	s.States[event.StateClose] = &s.Muted

	s.Grid = grid.Styles{
		Header:   lipgloss.NewStyle().Bold(true).Underline(true),
		Selected: lipgloss.NewStyle().Reverse(true),
	}
	s.Help = help.Styles{
		ShortKey:       lipgloss.NewStyle().Bold(true).Foreground(t.Accent),
		ShortDesc:      lipgloss.NewStyle(),
		ShortSeparator: lipgloss.NewStyle().Faint(true),
		Ellipsis:       lipgloss.NewStyle().Faint(true),
		FullKey:        lipgloss.NewStyle().Bold(true).Foreground(t.Accent),
		FullDesc:       lipgloss.NewStyle(),
		FullSeparator:  lipgloss.NewStyle().Faint(true),
	}
	s.Filter = textinput.DefaultStyles(dark)
	s.Filter.Focused.Prompt = lipgloss.NewStyle().Bold(true).Foreground(t.Accent)
	s.Filter.Focused.Text = lipgloss.NewStyle()
	s.Filter.Cursor.Color = lipgloss.LightDark(dark)(lipgloss.Black, lipgloss.White)
	s.Filter.Cursor.Blink = false // a blinking cursor redraws the screen for nothing
	s.render()
	return s
}

// render renders the escape sequences of every style paint is given.
func (s *Styles) render() {
	s.seqs = make(map[*lipgloss.Style][2]string)
	for _, st := range []*lipgloss.Style{&s.Title, &s.Label, &s.Value, &s.Muted, &s.Accent, &s.Bad,
		&s.Warn, &s.Paused, &s.TabActive, &s.TabIdle, &s.ViewTitle, &s.Section, &s.Bar} {
		pre, post := grid.SeqOf(*st)
		s.seqs[st] = [2]string{pre, post}
	}
	for _, st := range s.States {
		if st != nil {
			pre, post := grid.SeqOf(*st)
			s.seqs[st] = [2]string{pre, post}
		}
	}
}

// state returns the style of a TCP state, nil when it has none.
func (s *Styles) state(st event.State) *lipgloss.Style {
	if int(st) < len(s.States) {
		return s.States[st]
	}
	return nil
}
