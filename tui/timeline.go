package tui

import (
	"math"
	"net/netip"
	"strings"
	"time"

	"github.com/twtrace/twtrace/tracer/advice"
	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/text"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/twtrace/twtrace/tracer/table"
)

// ---------------------------------------------------------------- VIEW

// The socket detail: endpoints, owner, the timeline of its states with the
// time spent in each, and, for the states that block a bind(), what it
// blocks and until when.

// barWidth is the widest timeline bar. Bars are on a log scale: a 12 µs
// SYN_RECV and a 60 s TIME_WAIT must both be visible.
const barWidth = 24

func (v *socketsView) detailView() string {
	st := v.ctx.styles
	s := v.detailSock
	var lines []string
	if s == nil {
		lines = append(lines, st.paint(&st.ViewTitle, "Socket ")+st.paint(&st.Muted, cookieName(v.detailCookie)),
			"", st.paint(&st.Muted, "  gone from the table: closed, then dropped after its linger (or evicted)"))
		return fitLines(lines, v.width, v.height)
	}
	now := v.ctx.now
	title := st.paint(&st.ViewTitle, "Socket "+cookieName(s.Cookie)+" ") + st.paint(st.state(s.State), s.State.String())
	if rem := s.Remaining(now); s.State == event.StateTimeWait && !s.Expires.IsZero() {
		title += st.paint(&st.Muted, " · ends in ") + st.paint(st.state(s.State), text.Countdown(rem)) +
			st.paint(&st.Muted, " (at "+text.Clock(s.Expires, v.ctx.loc)+")")
	}
	if !s.Closed.IsZero() {
		title += st.paint(&st.Muted, " · closed "+text.Age(now.Sub(s.Closed))+" ago")
	}
	lines = append(lines, title, "")

	netns := itoa(s.NetNS)
	if s.NetNS == v.ctx.hostNetNS {
		netns += " (host)"
	}
	inode := "-"
	if s.Inode != 0 {
		inode = itoa(s.Inode)
	}
	source := s.Source
	if s.State == event.StateTimeWait {
		if s.Confirmed {
			source += ", TIME_WAIT confirmed by sock_diag"
		} else {
			source += ", TIME_WAIT inferred (not yet seen by sock_diag)"
		}
	}
	pair := func(k1, v1, k2, v2 string) string {
		return "  " + st.paint(&st.Label, pad(k1, 7)) + pad(v1, 26) + st.paint(&st.Label, pad(k2, 7)) + v2
	}
	lines = append(lines,
		pair("local", text.Addr(s.Src), "remote", text.Addr(s.Dst)),
		pair("owner", text.Owner(s.Owner, &s.OwnerComm), "netns", netns),
		pair("family", s.Family.String(), "inode", inode),
		"  "+st.paint(&st.Label, pad("reuse", 7))+reuseText(s.Reuse),
		"  "+st.paint(&st.Label, pad("source", 7))+source,
		"",
		st.paint(&st.Section, "Timeline")+st.paint(&st.Muted, "  state, entered at, time spent (bars on a log scale)"))
	lines = append(lines, v.timelineLines(s)...)
	if hint := v.blockHint(s); hint != "" {
		wrap := lipgloss.NewStyle().Width(max(v.width-4, 20))
		lines = append(lines, "")
		for _, l := range strings.Split(wrap.Render(hint), "\n") {
			lines = append(lines, "  "+st.paint(&st.Muted, strings.TrimRight(l, " ")))
		}
	}
	return fitLines(lines, v.width, v.height)
}

// timelineLines renders one line per step. The last step of an open socket
// is still running: its time is counted to now.
func (v *socketsView) timelineLines(s *table.Socket) []string {
	st := v.ctx.styles
	if len(s.Timeline) == 0 {
		return []string{st.paint(&st.Muted, "  no transition seen (the socket predates the trace)")}
	}
	var out []string
	for i, step := range s.Timeline {
		dur, running := step.Dur, false
		if i == len(s.Timeline)-1 && s.Closed.IsZero() && !step.At.IsZero() {
			dur, running = v.ctx.now.Sub(step.At), true
		}
		spent := "?" // entered at an unknown time (before the trace)
		if !step.At.IsZero() {
			spent = text.Duration(dur)
		}
		line := "  " + pad(text.Clock(step.At, v.ctx.loc), 13) +
			st.paint(st.state(step.State), pad(step.State.String(), 12)) + padLeft(spent, 10) + "  " +
			st.paint(&st.Bar, bar(dur))
		if running {
			line += st.paint(&st.Muted, " so far")
			if step.State == event.StateTimeWait && !s.Expires.IsZero() {
				line += st.paint(&st.Muted, ", ") + st.paint(st.state(step.State), text.Countdown(s.Remaining(v.ctx.now))) +
					st.paint(&st.Muted, " left")
			}
		}
		out = append(out, line)
	}
	return out
}

// blockHint says what this socket does to a new bind() of its port, each
// way of binding predicted by the kernel's rule (tracer/advice), and the
// diagnosis of the port's last refused bind, if any.
func (v *socketsView) blockHint(s *table.Socket) string {
	if !s.Closed.IsZero() || s.Src.Port() == 0 {
		return ""
	}
	ip := netip.IPv4Unspecified()
	if s.Src.Addr().Is6() && !s.Src.Addr().Is4In6() {
		ip = netip.IPv6Unspecified()
	}
	target := netip.AddrPortFrom(ip, s.Src.Port())
	socks := []advice.Socket{advice.SocketFromTable(s)}
	var refused, ok []string
	for _, o := range advice.AllOptions {
		out := advice.Predict(socks, advice.Attempt{Addr: target, Options: o})
		label := optionLabel(o)
		if !out.Certain {
			label += "?"
		}
		if out.Result == advice.OK {
			ok = append(ok, label)
		} else {
			refused = append(refused, label)
		}
	}
	hint := "Beside this socket, a new bind() to " + text.Addr(target)
	if len(refused) > 0 {
		hint += " is refused with EADDRINUSE " + strings.Join(refused, ", ")
		if len(ok) > 0 {
			hint += ", and gets through " + strings.Join(ok, ", ")
		}
	} else {
		hint += " gets through " + strings.Join(ok, ", ")
	}
	hint += " (twtrace why " + itoa(s.Src.Port()) + " weighs every socket of the port)."
	if !s.Reuse.Known() {
		hint += " ? depends on this socket's SO_REUSEADDR/SO_REUSEPORT, which were not read."
	}
	if f := v.ctx.failures.forPort(s.NetNS, s.Src.Port()); f != nil {
		hint += " Last refused bind of the port: " + whyText(f, v.ctx) + "."
	}
	return hint
}

func optionLabel(o advice.Options) string {
	switch o {
	case 0:
		return "plain"
	case advice.ReuseAddr:
		return "with SO_REUSEADDR"
	case advice.ReusePort:
		return "with SO_REUSEPORT"
	}
	return "with both"
}

// bar is a log-scale bar: 1 µs is empty, a minute is full.
func bar(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	us := float64(d) / float64(time.Microsecond)
	n := int(math.Round(math.Log10(us+1) / math.Log10(float64(time.Minute/time.Microsecond)) * barWidth))
	return strings.Repeat("█", min(max(n, 1), barWidth))
}

func cookieName(c uint64) string {
	const hex = "0123456789abcdef"
	b := []byte("sk:")
	started := false
	for shift := 60; shift >= 0; shift -= 4 {
		d := (c >> uint(shift)) & 0xf
		if d != 0 || started || shift == 0 {
			b = append(b, hex[d])
			started = true
		}
	}
	return string(b)
}

// pad pads plain text to w cells, with at least one space after it.
func pad(s string, w int) string {
	if n := w - ansi.StringWidth(s); n > 0 {
		return s + strings.Repeat(" ", n)
	}
	return s + " "
}

func padLeft(s string, w int) string {
	if n := w - ansi.StringWidth(s); n > 0 {
		return strings.Repeat(" ", n) + s
	}
	return s
}

// fitLines makes exactly h lines of at most w cells.
func fitLines(lines []string, w, h int) string {
	if len(lines) > h {
		lines = lines[:h]
	}
	for i, l := range lines {
		if ansi.StringWidth(l) > w {
			lines[i] = ansi.Truncate(l, w, "…")
		}
	}
	for len(lines) < h {
		lines = append(lines, "")
	}
	return strings.Join(lines, "\n")
}

// reuseText names a socket's address-reuse options for the detail view.
func reuseText(r event.Reuse) string {
	switch {
	case !r.Known():
		return "unknown (SO_REUSEADDR/SO_REUSEPORT not read)"
	case r&(event.ReuseAddr|event.ReusePort) == 0:
		return "neither SO_REUSEADDR nor SO_REUSEPORT"
	case r&event.ReuseAddr == 0:
		return "SO_REUSEPORT"
	case r&event.ReusePort == 0:
		return "SO_REUSEADDR"
	}
	return "SO_REUSEADDR, SO_REUSEPORT"
}
