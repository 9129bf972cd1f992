// Package grid is a table component that renders only the rows on screen.
//
// The caller keeps its rows in whatever form it has them (a slice of
// sockets, a ring of events) and hands View a function that formats row i:
// a table of 100 000 sockets then costs what the 25 rows on screen cost,
// where bubbles/table would format and store every row as strings.
//
// Columns have a minimum width, a share of the width left over (Flex) and a
// drop order, so that a narrow terminal loses the least useful columns
// instead of wrapping.
package grid

import (
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
)

// ---------------------------------------------------------------- MODEL

// Align is the alignment of a column's text.
type Align uint8

// Alignments.
const (
	Left Align = iota
	Right
)

// Column describes one column.
type Column struct {
	Title string
	Width int   // minimum width in cells
	Flex  int   // share of the width left over once every minimum is met
	Align Align //
	// Drop orders what goes when the terminal is too narrow: columns with
	// the highest Drop are hidden first; 0 is never hidden.
	Drop int
}

// Cell is one formatted cell. Text must not contain escape sequences: the
// grid measures and truncates it as plain text. Style must be an inline
// text style (colours, bold, reverse...): the grid renders it once and
// reuses its escape sequences, and a style is known by its address, so it
// must not change after its first use.
type Cell struct {
	Text  string
	Style *lipgloss.Style // nil: plain
	// Span makes the cell take the rest of the row: the columns after it
	// are not drawn. For rows that are a message, not a record.
	Span bool
}

// RowFunc appends the cells of row i to cells and returns them. It is called
// only for the rows on screen.
type RowFunc func(i int, cells []Cell) []Cell

// KeyMap holds the navigation keys. It implements help.KeyMap.
type KeyMap struct {
	Up, Down, PageUp, PageDown, Home, End key.Binding
}

// DefaultKeyMap returns vi and arrow navigation.
func DefaultKeyMap() KeyMap {
	return KeyMap{
		Up:       key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
		Down:     key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
		PageUp:   key.NewBinding(key.WithKeys("pgup", "ctrl+b"), key.WithHelp("pgup", "page up")),
		PageDown: key.NewBinding(key.WithKeys("pgdown", "ctrl+f"), key.WithHelp("pgdn", "page down")),
		Home:     key.NewBinding(key.WithKeys("home", "g"), key.WithHelp("home/g", "first")),
		End:      key.NewBinding(key.WithKeys("end", "G"), key.WithHelp("end/G", "last")),
	}
}

// ShortHelp implements help.KeyMap.
func (k KeyMap) ShortHelp() []key.Binding { return []key.Binding{k.Up, k.Down} }

// FullHelp implements help.KeyMap.
func (k KeyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{{k.Up, k.Down, k.PageUp, k.PageDown, k.Home, k.End}}
}

// Styles are the grid's styles.
type Styles struct {
	Header   lipgloss.Style
	Selected lipgloss.Style // the cursor row, rendered over plain cells
}

// DefaultStyles returns styles that work without colour.
func DefaultStyles() Styles {
	return Styles{
		Header:   lipgloss.NewStyle().Bold(true),
		Selected: lipgloss.NewStyle().Reverse(true),
	}
}

// Model is the grid's state: columns, size, row count, cursor and scroll.
type Model struct {
	KeyMap KeyMap
	Styles Styles

	cols   []Column
	widths []int // per column; 0: hidden
	width  int
	height int // lines, header included

	rows   int
	cursor int
	offset int // first row on screen

	// Cursorless grids scroll without a highlighted row (a log).
	cursorless bool
	cells      []Cell // reused from frame to frame
	seqs       map[*lipgloss.Style]seq
}

// New returns a grid with the given columns.
func New(cols ...Column) Model {
	m := Model{KeyMap: DefaultKeyMap(), Styles: DefaultStyles()}
	m.SetColumns(cols)
	return m
}

// SetColumns replaces the columns.
func (m *Model) SetColumns(cols []Column) {
	m.cols = append(m.cols[:0:0], cols...)
	m.layout()
}

// SetSize sets the width and the height in lines, header included.
func (m *Model) SetSize(width, height int) {
	m.width, m.height = max(width, 0), max(height, 1)
	m.layout()
	m.clamp()
}

// Width returns the grid's width.
func (m Model) Width() int { return m.width }

// ColumnWidth returns the width given to column i, 0 when it is hidden.
func (m Model) ColumnWidth(i int) int {
	if i < 0 || i >= len(m.widths) {
		return 0
	}
	return m.widths[i]
}

// SetRows sets the number of rows, keeping the cursor in range.
func (m *Model) SetRows(n int) {
	m.rows = max(n, 0)
	m.clamp()
}

// Rows returns the number of rows.
func (m Model) Rows() int { return m.rows }

// Cursor returns the selected row, or -1 when there are no rows.
func (m Model) Cursor() int {
	if m.rows == 0 {
		return -1
	}
	return m.cursor
}

// SetCursor selects row i (clamped) and scrolls it into view.
func (m *Model) SetCursor(i int) {
	m.cursor = i
	m.clamp()
}

// AtEnd reports whether the cursor is on the last row (or there are none).
func (m Model) AtEnd() bool { return m.rows == 0 || m.cursor == m.rows-1 }

// SetCursorless hides the cursor row highlight, for logs.
func (m *Model) SetCursorless(v bool) { m.cursorless = v }

// Visible returns how many rows fit under the header.
func (m Model) Visible() int { return max(m.height-1, 1) }

// Offset returns the first row on screen.
func (m Model) Offset() int { return m.offset }

// clamp keeps the cursor in range and on screen.
func (m *Model) clamp() {
	vis := m.Visible()
	m.cursor = min(max(m.cursor, 0), max(m.rows-1, 0))
	if m.cursor < m.offset {
		m.offset = m.cursor
	}
	if m.cursor >= m.offset+vis {
		m.offset = m.cursor - vis + 1
	}
	m.offset = min(max(m.offset, 0), max(m.rows-vis, 0))
}

// layout gives each column its width: drop columns until the minimums fit,
// then share the rest among the flexible columns.
func (m *Model) layout() {
	m.widths = make([]int, len(m.cols))
	shown := make([]bool, len(m.cols))
	for i := range m.cols {
		shown[i] = true
	}
	need := func() int {
		n, w := 0, 0
		for i, c := range m.cols {
			if shown[i] {
				w += c.Width
				n++
			}
		}
		return w + max(n-1, 0) // one space between columns
	}
	for need() > m.width {
		drop, at := 0, -1
		for i, c := range m.cols {
			if shown[i] && c.Drop > drop {
				drop, at = c.Drop, i
			}
		}
		if at < 0 {
			break // only undroppable columns left: truncate the line instead
		}
		shown[at] = false
	}
	spare, flex := max(m.width-need(), 0), 0
	for i, c := range m.cols {
		if shown[i] {
			m.widths[i] = c.Width
			flex += c.Flex
		}
	}
	if flex == 0 {
		return
	}
	last := -1
	given := 0
	for i, c := range m.cols {
		if shown[i] && c.Flex > 0 {
			add := spare * c.Flex / flex
			m.widths[i] += add
			given += add
			last = i
		}
	}
	m.widths[last] += spare - given // rounding leftovers
}

// ---------------------------------------------------------------- UPDATE

// Update moves the cursor on navigation keys.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	k, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return m, nil
	}
	m.Move(k)
	return m, nil
}

// Move applies a navigation key and reports whether it was one.
func (m *Model) Move(k tea.KeyPressMsg) bool {
	vis := m.Visible()
	switch {
	case key.Matches(k, m.KeyMap.Up):
		m.cursor--
	case key.Matches(k, m.KeyMap.Down):
		m.cursor++
	case key.Matches(k, m.KeyMap.PageUp):
		m.cursor -= vis
		m.offset -= vis
	case key.Matches(k, m.KeyMap.PageDown):
		m.cursor += vis
		m.offset += vis
	case key.Matches(k, m.KeyMap.Home):
		m.cursor = 0
	case key.Matches(k, m.KeyMap.End):
		m.cursor = m.rows - 1
	default:
		return false
	}
	m.clamp()
	return true
}
