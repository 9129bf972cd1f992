package tui

import (
	"charm.land/bubbles/v2/key"

	"github.com/twtrace/twtrace/tui/grid"
)

// ---------------------------------------------------------------- UPDATE

// KeyMap holds every key binding of the UI. It implements help.KeyMap; the
// model enables only the bindings of the current mode (see setMode), so the
// footer shows the keys that do something now.
type KeyMap struct {
	Nav grid.KeyMap // movement in tables, shared by every view

	Quit     key.Binding
	Help     key.Binding
	NextView key.Binding
	PrevView key.Binding
	Views    key.Binding // 1-6
	Filter   key.Binding
	Back     key.Binding
	Select   key.Binding // enter: drill down (its help text depends on the view)
	Pause    key.Binding // the log, live; the replay, replaying

	// Replaying a capture.
	Step        key.Binding
	Faster      key.Binding
	Slower      key.Binding
	NextFailure key.Binding
	PrevFailure key.Binding
	Seek        key.Binding

	// While typing a filter, or a time to go to.
	Apply  key.Binding
	Cancel key.Binding
}

// DefaultKeyMap returns the keys of htop, less and k9s habits.
func DefaultKeyMap() *KeyMap {
	return &KeyMap{
		Nav:      grid.DefaultKeyMap(),
		Quit:     key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "quit")),
		Help:     key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		NextView: key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "next view")),
		PrevView: key.NewBinding(key.WithKeys("shift+tab"), key.WithHelp("S-tab", "prev view")),
		Views:    key.NewBinding(key.WithKeys("1", "2", "3", "4", "5", "6"), key.WithHelp("1-6", "view")),
		Filter:   key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter")),
		Back:     key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back")),
		Select:   key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "open")),
		Pause:    key.NewBinding(key.WithKeys("space"), key.WithHelp("space", "pause log")),
		Apply:    key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "apply")),
		Cancel:   key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "cancel")),

		// mpv's and less's habits: . a frame, ] and [ the next and the
		// previous match.
		Step:        key.NewBinding(key.WithKeys("."), key.WithHelp(".", "step")),
		Faster:      key.NewBinding(key.WithKeys("+", "="), key.WithHelp("+", "faster")),
		Slower:      key.NewBinding(key.WithKeys("-"), key.WithHelp("-", "slower")),
		NextFailure: key.NewBinding(key.WithKeys("]"), key.WithHelp("]", "next failure")),
		PrevFailure: key.NewBinding(key.WithKeys("["), key.WithHelp("[", "prev failure")),
		Seek:        key.NewBinding(key.WithKeys("t"), key.WithHelp("t", "go to time")),
	}
}

// mode is what the keys act on at the moment.
type mode struct {
	view      viewID
	filtering bool // typing a filter
	detail    bool // a socket's timeline is open
	help      bool // the full help is open
	paused    bool // the log, live; the replay, replaying
	replay    bool // a capture is playing: the replay's keys
	canBack   bool // esc has something to undo
}

// setMode enables the bindings that act in m and words them for it.
func (k *KeyMap) setMode(m mode) {
	typing := m.filtering
	for _, b := range []*key.Binding{&k.Quit, &k.Help, &k.NextView, &k.PrevView, &k.Views, &k.Filter, &k.Pause} {
		b.SetEnabled(!typing)
	}
	for _, b := range []*key.Binding{&k.Step, &k.Faster, &k.Slower, &k.NextFailure, &k.PrevFailure, &k.Seek} {
		b.SetEnabled(!typing && m.replay)
	}
	k.Apply.SetEnabled(typing)
	k.Cancel.SetEnabled(typing)
	k.Back.SetEnabled(!typing && (m.canBack || m.detail || m.help))

	k.Select.SetEnabled(!typing && !m.detail && (m.view == viewPorts || m.view == viewSockets))
	switch m.view {
	case viewPorts:
		k.Select.SetHelp("enter", "sockets")
	case viewSockets:
		k.Select.SetHelp("enter", "timeline")
	}
	switch {
	case m.replay && m.paused:
		k.Pause.SetHelp("space", "play")
	case m.replay:
		k.Pause.SetHelp("space", "pause")
	case m.paused:
		k.Pause.SetHelp("space", "resume log")
	default:
		k.Pause.SetHelp("space", "pause log")
	}
	switch {
	case m.help:
		k.Back.SetHelp("esc", "close help")
	case m.detail:
		k.Back.SetHelp("esc", "close")
	default:
		k.Back.SetHelp("esc", "back")
	}
	if m.view == viewEvents {
		k.Nav.End.SetHelp("end/G", "follow")
	} else {
		k.Nav.End.SetHelp("end/G", "last")
	}
}

// ShortHelp implements help.KeyMap: the footer line.
func (k *KeyMap) ShortHelp() []key.Binding {
	// Movement is left to the full help: everyone tries the arrows.
	return []key.Binding{k.Apply, k.Cancel, k.Select, k.Back, k.Filter, k.Pause, k.Step, k.NextFailure,
		k.NextView, k.Help, k.Quit}
}

// FullHelp implements help.KeyMap: the columns shown by "?".
func (k *KeyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		k.Nav.FullHelp()[0],
		{k.Select, k.Back, k.Filter, k.Pause},
		{k.NextView, k.PrevView, k.Views, k.Help, k.Quit},
		{k.Step, k.Faster, k.Slower, k.NextFailure, k.PrevFailure, k.Seek},
		{k.Apply, k.Cancel},
	}
}
