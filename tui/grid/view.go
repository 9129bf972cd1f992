package grid

import (
	"strings"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
)

// ---------------------------------------------------------------- VIEW

// View renders the header and the rows on screen, exactly height lines of
// at most width cells each. The cursor row is drawn in the Selected style
// over the whole width, its cells keeping their own styles on top (a red
// failure count stays red under reverse video). View changes nothing but
// its scratch buffers and its cache of the styles' escape sequences.
func (m *Model) View(row RowFunc) string {
	var b strings.Builder
	b.Grow((m.width + 16) * m.height)
	line := make([]byte, 0, m.width+8)

	line = line[:0]
	for i, c := range m.cols {
		line = m.appendCell(line, i, c.Title)
	}
	// The row styles are fields the caller may replace: rendered per frame,
	// not cached by address as cell styles are.
	hdr, sel := seqOf(m.Styles.Header), seqOf(m.Styles.Selected)
	b.WriteString(hdr.pre + fitLine(string(line), m.width) + hdr.post)

	vis := m.Visible()
	for r := m.offset; r < m.offset+vis; r++ {
		b.WriteByte('\n')
		if r >= m.rows {
			continue
		}
		m.cells = row(r, m.cells[:0])
		if r == m.cursor && !m.cursorless {
			m.writeRow(&b, line[:0], sel)
			continue
		}
		m.writeRow(&b, line[:0], seq{})
	}
	return b.String()
}

// spanAt returns the index of the current row's spanning cell, or -1. It
// starts at the first column shown from its own: the column it belongs to
// may be hidden.
func (m *Model) spanAt() int {
	for i := range m.cells {
		if m.cells[i].Span {
			return i
		}
	}
	return -1
}

// spanWidth is the width from column i to the end of the row.
func (m *Model) spanWidth(i int) int {
	w := -1
	for _, cw := range m.widths[i:] {
		if cw > 0 {
			w += cw + 1
		}
	}
	return max(w, 0)
}

func (m *Model) cellText(i int) string {
	if i < len(m.cells) {
		return m.cells[i].Text
	}
	return ""
}

// writeRow writes a row with its cells' styles. Separators stay outside
// the styles, so that an underline or a background stops at the text; plain
// cells do not pay for lipgloss. A row style (the cursor's) spans the whole
// width, under the cells' styles: each cell's reset is followed by the row
// style again.
func (m *Model) writeRow(b *strings.Builder, line []byte, row seq) {
	var cell []byte
	first := true
	at := m.spanAt()
	line = append(line, row.pre...)
	for i := range m.cols {
		if m.widths[i] == 0 {
			continue
		}
		if !first {
			line = append(line, ' ')
		}
		first = false
		c, w, align := i, m.widths[i], m.cols[i].Align
		span := at >= 0 && i >= at
		if span {
			c, w, align = at, m.spanWidth(i), Left
		}
		cell = appendFit(cell[:0], m.cellText(c), w, align)
		if c < len(m.cells) && m.cells[c].Style != nil {
			q := m.seq(m.cells[c].Style)
			line = append(line, q.pre...)
			line = append(line, cell...)
			line = append(line, q.post...)
			line = append(line, row.pre...)
		} else {
			line = append(line, cell...)
		}
		if span {
			break
		}
	}
	if m.overflow() {
		b.WriteString(ansi.Truncate(string(line), m.width, "…"))
		b.WriteString(row.post)
		return
	}
	if row.pre != "" {
		// The row style spans the width, past the last column.
		line = appendSpaces(line, m.width-m.rowWidth())
	}
	b.Write(line)
	b.WriteString(row.post)
}

// rowWidth is the width the shown columns take.
func (m *Model) rowWidth() int {
	w, n := 0, 0
	for _, cw := range m.widths {
		if cw > 0 {
			w += cw
			n++
		}
	}
	return w + max(n-1, 0)
}

// overflow reports whether the undroppable columns alone are wider than
// the grid.
func (m *Model) overflow() bool { return m.rowWidth() > m.width }

// appendCell appends column i's text, fitted, after a separator.
func (m *Model) appendCell(line []byte, i int, text string) []byte {
	w := m.widths[i]
	if w == 0 {
		return line
	}
	if len(line) > 0 {
		line = append(line, ' ')
	}
	return appendFit(line, text, w, m.cols[i].Align)
}

// appendFit appends s truncated or padded to exactly w cells.
func appendFit(b []byte, s string, w int, a Align) []byte {
	sw := width(s)
	if sw > w {
		s = truncate(s, w)
		sw = width(s)
	}
	pad := w - sw
	if a == Right {
		b = appendSpaces(b, pad)
		return append(b, s...)
	}
	b = append(b, s...)
	return appendSpaces(b, pad)
}

func appendSpaces(b []byte, n int) []byte {
	for ; n > 0; n-- {
		b = append(b, ' ')
	}
	return b
}

// truncate cuts s to w cells, the last one an ellipsis.
func truncate(s string, w int) string {
	n := 0
	for i, r := range s {
		if !simple(r) {
			return ansi.Truncate(s, w, "…")
		}
		if n == w-1 {
			return s[:i] + "…"
		}
		n++
	}
	return s
}

// simple runes are one cell wide and never combine with the next.
func simple(r rune) bool {
	return r >= 0x20 && r < 0x7f || r >= 0xa0 && r < 0x300 || r >= 0x2010 && r < 0x2027 ||
		r >= 0x2190 && r < 0x2200 || r >= 0x2500 && r < 0x25a0
}

// width is ansi.StringWidth with a fast path for what nearly every cell
// is: ASCII, Latin letters and punctuation, arrows, box drawing and blocks,
// all one cell wide and never combined.
func width(s string) int {
	n := 0
	for _, r := range s {
		if !simple(r) {
			return ansi.StringWidth(s)
		}
		n++
	}
	return n
}

// fitLine pads or truncates a plain line to w cells.
func fitLine(s string, w int) string {
	sw := width(s)
	if sw > w {
		return truncate(s, w)
	}
	if sw == w {
		return s
	}
	return s + strings.Repeat(" ", w-sw)
}

// seq is a style's escape sequences: lipgloss.Style.Render costs
// microseconds, and a frame has hundreds of styled cells.
type seq struct{ pre, post string }

func seqOf(st lipgloss.Style) seq {
	pre, post := SeqOf(st)
	return seq{pre, post}
}

// seq returns a cell style's sequences, cached by the style's address.
func (m *Model) seq(st *lipgloss.Style) seq {
	q, ok := m.seqs[st]
	if !ok {
		if m.seqs == nil {
			m.seqs = make(map[*lipgloss.Style]seq)
		}
		q = seqOf(*st)
		m.seqs[st] = q
	}
	return q
}

// SeqOf returns the escape sequences a style puts before and after a line
// of text.
func SeqOf(st lipgloss.Style) (pre, post string) {
	r := st.Render("X")
	i := strings.IndexByte(r, 'X')
	if i < 0 {
		return "", ""
	}
	return r[:i], r[i+1:]
}
