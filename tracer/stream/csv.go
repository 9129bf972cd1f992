package stream

import (
	"io"
	"strconv"
	"time"

	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/text"
)

// CSVHeader is the first line of the CSV stream: the text stream's columns
// in a form for spreadsheets and scripts. time is RFC 3339 in UTC with
// nanoseconds; kind is the JSON Lines kind; the task and the owner are
// split into pid and comm, empty when there is none; local, remote and
// event read as in the text stream; ms is the duration DETAIL shows (the
// time spent in the old state, a TIME_WAIT's time left) in milliseconds;
// detail holds DETAIL's other words.
const CSVHeader = "time,kind,pid,comm,owner_pid,owner_comm,local,remote,event,ms,detail"

// CSV writes one header line, then one row per event, fields quoted as RFC
// 4180 says (a task may name itself with commas and quotes) and lines ended
// by "\n".
type CSV struct {
	out
	field []byte // a field being quoted
}

// NewCSV returns a CSV writer to w.
func NewCSV(w io.Writer) *CSV {
	return &CSV{out: newOut(w, CSVHeader+"\n")}
}

// Write renders a batch and writes it with one call.
func (c *CSV) Write(batch []event.Event) error { return c.write(batch, c) }

func (c *CSV) appendRow(b []byte, ev *event.Event) []byte {
	b = appendUTC(b, ev.Time)
	b = append(b, ',')
	b = append(b, ev.Kind.String()...)
	b = append(b, ',')
	pid, comm, ok := text.Task(ev)
	b = c.appendProcess(b, pid, comm, ok)
	pid, comm = text.EventOwner(ev)
	b = c.appendProcess(b, pid, comm, pid != 0)
	for _, col := range [...]text.Column{text.ColLocal, text.ColRemote, text.ColWhat} {
		s := len(b)
		b = c.quote(text.AppendColumn(b, ev, col, time.UTC), s)
		b = append(b, ',')
	}
	if d, ok := text.DetailDuration(ev); ok {
		b = text.AppendMillis(b, d)
	}
	b = append(b, ',')
	s := len(b)
	b = c.quote(text.AppendNote(b, ev), s)
	return append(b, '\n')
}

// appendProcess appends the fields "pid,comm," of a task or an owner, or
// two empty fields.
func (c *CSV) appendProcess(b []byte, pid uint32, comm *event.Comm, ok bool) []byte {
	if !ok {
		return append(b, ",,"...)
	}
	b = strconv.AppendUint(b, uint64(pid), 10)
	b = append(b, ',')
	s := len(b)
	b = c.quote(text.AppendComm(b, comm), s)
	return append(b, ',')
}

// quote encloses the field appended since start in double quotes, its own
// doubled, when it needs them: as encoding/csv writes it, so that any CSV
// reader gets it back.
func (c *CSV) quote(b []byte, start int) []byte {
	if !needsQuotes(b[start:]) {
		return b
	}
	c.field = append(c.field[:0], b[start:]...)
	b = append(b[:start], '"')
	for _, ch := range c.field {
		if ch == '"' {
			b = append(b, '"')
		}
		b = append(b, ch)
	}
	return append(b, '"')
}

// appendUTC appends t as RFC 3339 in UTC with every digit of the
// nanoseconds, so that rows sort as text: 2026-11-25T09:30:00.010000000Z.
func appendUTC(b []byte, t time.Time) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	if y < 0 || y > 9999 {
		return t.AppendFormat(b, "2006-01-02T15:04:05.000000000Z07:00")
	}
	h, mi, s := t.Clock()
	b = appendDigits(b, y, 4)
	b = append(b, '-')
	b = appendDigits(b, int(mo), 2)
	b = append(b, '-')
	b = appendDigits(b, d, 2)
	b = append(b, 'T')
	b = appendDigits(b, h, 2)
	b = append(b, ':')
	b = appendDigits(b, mi, 2)
	b = append(b, ':')
	b = appendDigits(b, s, 2)
	b = append(b, '.')
	b = appendDigits(b, t.Nanosecond(), 9)
	return append(b, 'Z')
}

// appendDigits appends v, 0 <= v < 10^n, in n digits.
func appendDigits(b []byte, v, n int) []byte {
	var d [9]byte
	for i := n - 1; i >= 0; i-- {
		d[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, d[:n]...)
}

func needsQuotes(f []byte) bool {
	if len(f) == 0 {
		return false
	}
	if f[0] == ' ' || f[0] == '\t' || string(f) == `\.` {
		return true
	}
	for _, ch := range f {
		switch ch {
		case ',', '"', '\r', '\n':
			return true
		}
	}
	return false
}
