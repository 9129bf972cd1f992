package sockdiag

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ssTimeWait is one line of `ss -H -tan -o -e state time-wait`.
type ssTimeWait struct {
	src, dst netip.AddrPort
	left     time.Duration // ss's rounding: whole seconds from 10 s up
	cookie   uint64
}

// runSS runs ss in the calling thread's network namespace: a child forked
// from a thread inside NetNS.Do inherits the thread's namespace.
func runSS() ([]ssTimeWait, error) {
	path, err := exec.LookPath("ss")
	if err != nil {
		return nil, fmt.Errorf("ss (iproute2) not installed: %w", err)
	}
	out, err := exec.Command(path, "-H", "-tan", "-o", "-e", "state", "time-wait").Output()
	if err != nil {
		return nil, fmt.Errorf("ss: %w", err)
	}
	return parseSS(string(out))
}

// parseSS reads lines such as
// "0 0 127.0.0.1:35517 127.0.0.1:49290 timer:(timewait,29sec,0) ino:0 sk:14e22".
func parseSS(out string) ([]ssTimeWait, error) {
	var tws []ssTimeWait
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		var tw ssTimeWait
		var err error
		if tw.src, err = netip.ParseAddrPort(f[2]); err != nil {
			return nil, fmt.Errorf("ss line %q: %w", line, err)
		}
		if tw.dst, err = netip.ParseAddrPort(f[3]); err != nil {
			return nil, fmt.Errorf("ss line %q: %w", line, err)
		}
		for _, field := range f[4:] {
			switch {
			case strings.HasPrefix(field, "timer:(timewait,"):
				v, _, _ := strings.Cut(strings.TrimPrefix(field, "timer:(timewait,"), ",")
				tw.left, err = parseSSTimer(v)
			case strings.HasPrefix(field, "sk:"):
				tw.cookie, err = strconv.ParseUint(strings.TrimPrefix(field, "sk:"), 16, 64)
			}
			if err != nil {
				return nil, fmt.Errorf("ss line %q: %w", line, err)
			}
		}
		tws = append(tws, tw)
	}
	return tws, nil
}

// parseSSTimer reads ss's print_ms_timer format: "1min", "59sec", "9.176ms"
// (9 s 176 ms), "176ms".
func parseSSTimer(s string) (time.Duration, error) {
	var d time.Duration
	num := func(v string, unit time.Duration) error {
		n, err := strconv.Atoi(v)
		d += time.Duration(n) * unit
		return err
	}
	if m, rest, ok := strings.Cut(s, "min"); ok {
		if err := num(m, time.Minute); err != nil {
			return 0, fmt.Errorf("timer %q: %w", s, err)
		}
		s = rest
	}
	if sec, rest, ok := strings.Cut(s, "sec"); ok {
		if err := num(sec, time.Second); err != nil {
			return 0, fmt.Errorf("timer %q: %w", s, err)
		}
		s = rest
	} else if sec, rest, ok := strings.Cut(s, "."); ok {
		if err := num(sec, time.Second); err != nil {
			return 0, fmt.Errorf("timer %q: %w", s, err)
		}
		s = rest
	}
	if ms, ok := strings.CutSuffix(s, "ms"); ok {
		if err := num(ms, time.Millisecond); err != nil {
			return 0, fmt.Errorf("timer %q: %w", s, err)
		}
	} else if s != "" {
		return 0, fmt.Errorf("timer %q: unexpected %q", s, s)
	}
	return d, nil
}

func TestParseSSTimer(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"1min":    time.Minute,
		"59sec":   59 * time.Second,
		"9.176ms": 9176 * time.Millisecond,
		"176ms":   176 * time.Millisecond,
		"":        0,
	} {
		got, err := parseSSTimer(in)
		if err != nil || got != want {
			t.Errorf("parseSSTimer(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := parseSSTimer("soon"); err == nil {
		t.Error(`parseSSTimer("soon"): no error`)
	}
}
