package tui

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/twtrace/twtrace/tracer/capture"
)

// ---------------------------------------------------------------- MODEL

// Player is a feed that plays a capture and can move through it
// (capture.Player). When the feed the UI runs is one, the UI has the
// replay's keys: pause, step, speed, the next and the previous failure, go
// to a time; its title shows the capture's clock and the pace, its tabs
// line where the replay is.
type Player interface {
	Feed
	Control(capture.PlayControl)
	Position() capture.Position
	// OnReset is called, on the feed's goroutine, when the player starts
	// again from the capture's start: what the UI showed is forgotten.
	OnReset(func())
}

// The seek line's prompt and example.
const (
	seekPrompt      = "go to "
	seekPlaceholder = "14:03:07 · 14:03:07.250 · +30s · -2m · start · end"
	filterPrompt    = "/"
	filterExample   = "8080 tw fail nginx sport:N pid:N"
)

// seekEnd is a time after any capture's: "end" plays to the last event.
var seekEnd = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// parseSeek reads where to go in a replay: a time of day, taken on the day
// nearest the position (a capture may cross midnight), a step from the
// position, or the capture's start or end. loc is the zone times are shown in.
func parseSeek(s string, now time.Time, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "start", "begin", "0":
		return time.Time{}, nil // before the capture: the player goes to its start
	case "end", "$":
		return seekEnd, nil
	}
	if s != "" && (s[0] == '+' || s[0] == '-') {
		if d, err := time.ParseDuration(s); err == nil {
			return now.Add(d), nil
		}
	}
	for _, layout := range []string{"15:04:05.999999999", "15:04:05", "15:04"} {
		tod, err := time.ParseInLocation(layout, s, loc)
		if err != nil {
			continue
		}
		local := now.In(loc)
		y, mo, d := local.Date()
		at := time.Date(y, mo, d, tod.Hour(), tod.Minute(), tod.Second(), tod.Nanosecond(), loc)
		best := at
		for _, c := range []time.Time{at.AddDate(0, 0, -1), at.AddDate(0, 0, 1)} {
			if absDur(c.Sub(now)) < absDur(best.Sub(now)) {
				best = c
			}
		}
		return best, nil
	}
	return time.Time{}, fmt.Errorf("go to %q: want a time of day such as 14:03:07 or 14:03:07.250, "+
		"a step such as +30s or -2m, start or end", s)
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// fmtSpeed is the pace as the title shows it: ×1, ×0.25, ×1024, max.
func fmtSpeed(s float64) string {
	if s == 0 {
		return "max"
	}
	return "×" + strconv.FormatFloat(s, 'f', -1, 64)
}

// ---------------------------------------------------------------- UPDATE

// onReplayKey handles the replay's keys; false for a key that is not one.
func (m *Model) onReplayKey(k tea.KeyPressMsg) bool {
	keys := m.ctx.keys
	pl := m.player
	switch {
	case pl == nil:
		return false
	case key.Matches(k, keys.Pause):
		pl.Control(capture.PlayControl{Op: capture.PlayPause})
	case key.Matches(k, keys.Step):
		pl.Control(capture.PlayControl{Op: capture.PlayStep})
	case key.Matches(k, keys.Faster):
		m.speed = capture.Faster(m.speed)
		pl.Control(capture.PlayControl{Op: capture.PlaySpeed, Speed: m.speed})
	case key.Matches(k, keys.Slower):
		m.speed = capture.Slower(m.speed)
		pl.Control(capture.PlayControl{Op: capture.PlaySpeed, Speed: m.speed})
	case key.Matches(k, keys.NextFailure):
		if m.pos.Refused >= 0 && m.pos.Failed >= m.pos.Refused {
			m.status = "no refused syscall after this point of the capture"
			return true
		}
		pl.Control(capture.PlayControl{Op: capture.PlayNextFailure})
	case key.Matches(k, keys.PrevFailure):
		if m.pos.Failed == 0 || m.pos.Failed == 1 && m.pos.OnFail {
			m.status = "no refused syscall before this point of the capture"
			return true
		}
		pl.Control(capture.PlayControl{Op: capture.PlayPrevFailure})
	case key.Matches(k, keys.Seek):
		m.openLine(true)
	default:
		return false
	}
	m.readPosition()
	return true
}

// readPosition takes the player's position, for the title and the tabs.
func (m *Model) readPosition() {
	if m.player != nil {
		m.pos = m.player.Position()
	}
}

// restart forgets what the UI showed: the player starts again from the
// capture's start (a seek back), and the events up to the new position
// come again.
func (m *Model) restart() {
	m.events.reset()
	m.failures.reset()
	m.failed.sync()
	m.failed.grid.SetCursor(0)
	m.seen, m.uiDropped, m.newPaused = 0, 0, 0
	m.evRate = meter{}
	m.refresh.want++
}

// ---------------------------------------------------------------- VIEW

// replayBadge says where the replay is, at the end of the tabs line:
// paused, moving to a position, or at the end (playing, nothing: the title
// has the pace); the refused syscalls played, of how many.
func (m *Model) replayBadge() string {
	st := m.ctx.styles
	p := m.pos
	var badge string
	switch {
	case p.Seeking:
		badge = st.paint(&st.Paused, " SEEKING ") + " "
	case p.AtEnd:
		badge = st.paint(&st.Paused, " END ") + " "
	case p.Paused:
		badge = st.paint(&st.Paused, " PAUSED ") + " "
	}
	if p.Refused == 0 {
		return badge + st.paint(&st.Muted, "no failure")
	}
	return badge + st.paint(&st.Muted, "failure "+of(int64(p.Failed), int64(p.Refused)))
}

// replayClock is the title's right end in a replay: the pace, the event
// played of how many, the capture's clock to the millisecond (its clock
// moves by steps of an event).
func (m *Model) replayClock() string {
	st := m.ctx.styles
	pace := fmtSpeed(m.speed)
	if !m.pos.Paused && !m.pos.AtEnd {
		pace = "▶ " + pace
	}
	return st.paint(&st.Label, "replay ") + pace + st.paint(&st.Label, "  event ") + of(m.pos.Played, m.pos.Total) +
		"  " + m.ctx.now.In(m.ctx.loc).Format("15:04:05.000")
}

// of is "n/total", or n while total is not known (-1).
func of(n, total int64) string {
	if total < 0 {
		return itoa(n)
	}
	return itoa(n) + "/" + itoa(total)
}
