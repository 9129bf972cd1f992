package grid

import (
	"strconv"
	"strings"
	"testing"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"
)

var cols = []Column{
	{Title: "ID", Width: 4, Align: Right},
	{Title: "NAME", Width: 10, Flex: 1},
	{Title: "NOTE", Width: 12, Flex: 2, Drop: 1},
	{Title: "X", Width: 3, Drop: 2},
}

func rows(calls *[]int) RowFunc {
	red := lipgloss.NewStyle().Foreground(lipgloss.Red)
	return func(i int, c []Cell) []Cell {
		*calls = append(*calls, i)
		c = append(c, Cell{Text: strconv.Itoa(i)}, Cell{Text: "row " + strconv.Itoa(i)})
		if i%3 == 0 {
			return append(c, Cell{Text: "a note that is far too long to fit", Style: &red}, Cell{Text: "x"})
		}
		return append(c, Cell{Text: "ok"}, Cell{Text: "y"})
	}
}

// TestOnlyVisibleRows: a million rows cost what the screen holds.
func TestOnlyVisibleRows(t *testing.T) {
	m := New(cols...)
	m.SetSize(40, 6)
	m.SetRows(1_000_000)
	var calls []int
	m.SetCursor(500_000)
	out := m.View(rows(&calls))
	if len(calls) != 5 || calls[0] != 499_996 || calls[4] != 500_000 {
		t.Errorf("rows formatted: %v, want the 5 on screen ending at the cursor", calls)
	}
	if n := strings.Count(out, "\n") + 1; n != 6 {
		t.Errorf("%d lines, want 6", n)
	}
}

func TestLayoutDropsColumns(t *testing.T) {
	m := New(cols...)
	for _, c := range []struct {
		w    int
		want []int
	}{
		{40, []int{4, 12, 18, 3}}, // 29 + 3 spaces: 8 spare, 1:2 to the flexible columns, rounding to the last
		{32, []int{4, 10, 12, 3}},
		{31, []int{4, 11, 14, 0}}, // X goes first
		{20, []int{4, 15, 0, 0}},  // then NOTE; NAME takes the rest
		{10, []int{4, 10, 0, 0}},  // too narrow for what cannot go: lines are cut
	} {
		m.SetSize(c.w, 5)
		var got []int
		for i := range cols {
			got = append(got, m.ColumnWidth(i))
		}
		if !equal(got, c.want) {
			t.Errorf("width %d: %v, want %v", c.w, got, c.want)
		}
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestNavigation(t *testing.T) {
	m := New(cols...)
	m.SetSize(40, 6) // 5 rows on screen
	m.SetRows(20)
	press := func(k tea.KeyPressMsg) { m, _ = m.Update(k) }
	for _, c := range []struct {
		key            tea.KeyPressMsg
		cursor, offset int
	}{
		{tea.KeyPressMsg{Code: 'j', Text: "j"}, 1, 0},
		{tea.KeyPressMsg{Code: tea.KeyPgDown}, 6, 5},
		{tea.KeyPressMsg{Code: 'G', Text: "G"}, 19, 15},
		{tea.KeyPressMsg{Code: tea.KeyDown}, 19, 15},
		{tea.KeyPressMsg{Code: tea.KeyPgUp}, 14, 10},
		{tea.KeyPressMsg{Code: 'k', Text: "k"}, 13, 10},
		{tea.KeyPressMsg{Code: tea.KeyHome}, 0, 0},
		{tea.KeyPressMsg{Code: tea.KeyUp}, 0, 0},
	} {
		press(c.key)
		if m.Cursor() != c.cursor || m.Offset() != c.offset {
			t.Errorf("after %s: cursor %d offset %d, want %d %d", c.key, m.Cursor(), m.Offset(), c.cursor, c.offset)
		}
	}
	m.SetRows(3) // the data shrank under the cursor
	if m.Cursor() != 0 || m.Offset() != 0 {
		t.Errorf("after shrinking: cursor %d offset %d", m.Cursor(), m.Offset())
	}
	m.SetRows(0)
	if m.Cursor() != -1 {
		t.Errorf("cursor %d with no rows", m.Cursor())
	}
}

func TestView(t *testing.T) {
	m := New(cols...)
	m.SetSize(40, 6)
	m.SetRows(8)
	m.SetCursor(2)
	var calls []int
	out := m.View(rows(&calls))
	for i, l := range strings.Split(out, "\n") {
		if w := ansi.StringWidth(l); w > 40 {
			t.Errorf("line %d is %d wide", i, w)
		}
	}
	if !strings.Contains(out, "\x1b[31m") {
		t.Error("a cell's style is missing")
	}
	golden.RequireEqual(t, ansi.Strip(out))
}

func TestSpan(t *testing.T) {
	m := New(cols...)
	m.SetSize(31, 3) // X is hidden
	m.SetRows(2)
	m.SetCursor(1)
	var msg = "a message across the row, cut at its end"
	out := m.View(func(i int, c []Cell) []Cell {
		return append(c, Cell{Text: strconv.Itoa(i)}, Cell{Text: msg, Span: true})
	})
	lines := strings.Split(ansi.Strip(out), "\n")
	for _, l := range lines[1:] {
		if !strings.HasPrefix(strings.TrimLeft(l, " 01"), "a message across the row") || ansi.StringWidth(l) != 31 {
			t.Errorf("span row %q", l)
		}
	}
}

func TestTruncateWide(t *testing.T) {
	if got := truncate("名前名前名前", 5); ansi.StringWidth(got) > 5 || !strings.HasSuffix(got, "…") {
		t.Errorf("wide runes: %q", got)
	}
	if got := truncate("abcdef", 4); got != "abc…" {
		t.Errorf("%q", got)
	}
	if width("→ · █ é") != 7 {
		t.Errorf("width %d", width("→ · █ é"))
	}
}
