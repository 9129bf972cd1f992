package demo

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// load is a client connecting again and again in the background, as users
// of a service do while it restarts.
type load struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	by   map[string]int // answered connections, by the role that answered
	errs map[string]int // failed ones, by "call ERRNO"
}

// startLoad: "load ADDR:PORT PERIOD_MS".
func (a *agentProc) startLoad(args []string) string {
	ap, err1 := netip.ParseAddrPort(args[0])
	ms, err2 := strconv.Atoi(args[1])
	if err1 != nil || err2 != nil || ms <= 0 {
		return "err usage load ADDR:PORT PERIOD_MS"
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.load != nil {
		return "err usage a load runs already"
	}
	l := &load{stop: make(chan struct{}), done: make(chan struct{}), by: map[string]int{}, errs: map[string]int{}}
	a.load = l
	go l.run(ap, time.Duration(ms)*time.Millisecond)
	return "ok"
}

func (l *load) run(ap netip.AddrPort, period time.Duration) {
	defer close(l.done)
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		_, who, err := connect(ap, "server-first")
		l.mu.Lock()
		if err != nil {
			l.errs[strings.TrimPrefix(errReply(err), "err ")]++
		} else {
			l.by[who]++
		}
		l.mu.Unlock()
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
	}
}

// stopLoad ends the load and tallies it (see tally).
func (a *agentProc) stopLoad() string {
	a.mu.Lock()
	l := a.load
	a.load = nil
	a.mu.Unlock()
	if l == nil {
		return "err usage no load runs"
	}
	close(l.stop)
	<-l.done
	return l.tally()
}

// peekLoad tallies the load so far.
func (a *agentProc) peekLoad() string {
	a.mu.Lock()
	l := a.load
	a.mu.Unlock()
	if l == nil {
		return "err usage no load runs"
	}
	return l.tally()
}

// tally: "ok total=N failed=F ROLE=K ... CALL_ERRNO=K ...", sorted.
func (l *load) tally() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	total, failed := 0, 0
	var parts []string
	for who, n := range l.by {
		total += n
		parts = append(parts, fmt.Sprintf("%s=%d", who, n))
	}
	for e, n := range l.errs {
		total += n
		failed += n
		parts = append(parts, strings.ReplaceAll(e, " ", "_")+"="+strconv.Itoa(n))
	}
	slices.Sort(parts)
	return strings.TrimSpace(fmt.Sprintf("ok total=%d failed=%d %s", total, failed, strings.Join(parts, " ")))
}
