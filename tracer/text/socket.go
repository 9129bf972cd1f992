package text

import (
	"strconv"
	"time"

	"github.com/twtrace/twtrace/tracer/table"
)

// timerNames name the timers as twtrace shows them; ss -o says "on" for a
// retransmission and "persist" for a zero-window probe.
var timerNames = [...]string{
	table.TimerNone:       "-",
	table.TimerRetransmit: "retransmit",
	table.TimerKeepalive:  "keepalive",
	table.TimerTimeWait:   "timewait",
	table.TimerProbe:      "probe",
}

// TimerName names a socket's timer: retransmit, keepalive, timewait,
// probe, or "-" for none.
func TimerName(t table.Timer) string {
	if int(t) < len(timerNames) {
		return timerNames[t]
	}
	return "timer" + strconv.Itoa(int(t))
}

// AppendTimer appends a socket's pending timer as ss -o shows it, in
// twtrace's words: "timewait 42.5s", "keepalive 1m59s", "retransmit 204ms
// (3)" with the retransmissions (or unanswered probes) so far; "-" for none.
func AppendTimer(b []byte, t table.Timer, left time.Duration, retrans uint8) []byte {
	if t == table.TimerNone {
		return append(b, '-')
	}
	b = append(b, TimerName(t)...)
	b = append(b, ' ')
	if left < time.Second && left > 0 {
		b = AppendAge(b, left) // 204ms: ss shows retransmission timers to the ms
	} else {
		b = AppendCountdown(b, left)
	}
	if retrans > 0 {
		b = append(b, " ("...)
		b = strconv.AppendUint(b, uint64(retrans), 10)
		b = append(b, ')')
	}
	return b
}

// AppendHolders appends every process that holds a socket and its fds, as
// ss -p lists them: "4120 nginx fd=6, 4121 nginx fd=6"; "-" for none.
func AppendHolders(b []byte, hs []table.Holder) []byte {
	if len(hs) == 0 {
		return append(b, '-')
	}
	for i := range hs {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = AppendOwner(b, hs[i].PID, &hs[i].Comm)
		for k, fd := range hs[i].FDs {
			if k == 0 {
				b = append(b, " fd="...)
			} else {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(fd), 10)
		}
	}
	return b
}

// AppendSocketOwners appends a socket's holders when a listing found them
// (Detail), else its owner as the table knows it ("pid comm", "-").
func AppendSocketOwners(b []byte, s *table.Socket) []byte {
	if s.Detail != nil && len(s.Detail.Holders) > 0 {
		return AppendHolders(b, s.Detail.Holders)
	}
	return AppendOwner(b, s.Owner, &s.OwnerComm)
}
