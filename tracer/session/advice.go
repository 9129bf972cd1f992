package session

import (
	"errors"

	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/tracer/advice"
	"github.com/twtrace/twtrace/tracer/kstat"
	"github.com/twtrace/twtrace/tracer/sockdiag"
)

// NamespaceFacts reads, for the advisor, the settings and TIME_WAIT counts
// of a network namespace: the one netnsFD refers to, or the caller's with
// -1. It reads sysctls, the TIME_WAIT counters (rates need an earlier
// reading: prev, nil for none) and counts orphaned FIN_WAIT2 connections
// with one sock_diag dump of timewait sockets.
func NamespaceFacts(netnsFD int, prev *kstat.Counters) (*advice.NetNS, kstat.Counters, error) {
	n := &advice.NetNS{FinWait2Orphans: -1}
	var c kstat.Counters
	read := func(r *kstat.Reader) error {
		s, err := r.Sysctls()
		if err != nil {
			return err
		}
		n.Sysctls = &s
		if c, err = r.Counters(); err == nil {
			n.TimeWait = c.TimeWait
			if prev != nil {
				var sm kstat.Sampler
				sm.Add(*prev)
				if rt, ok := sm.Add(c); ok {
					n.Rates = &rt
				}
			}
		}
		return nil
	}
	var err error
	if netnsFD < 0 {
		var r *kstat.Reader
		if r, err = kstat.NewReader("/proc"); err == nil {
			err = read(r)
		}
	} else {
		err = kstat.InNetNS(netnsFD, read)
	}
	if err != nil {
		return n, c, err
	}
	if orphans, err := finWait2Orphans(netnsFD); err == nil {
		n.FinWait2Orphans = orphans
	}
	return n, c, nil
}

// finWait2Orphans counts the timewait sockets in substate FIN_WAIT2: the
// connections their program closed that wait for the peer's FIN.
func finWait2Orphans(netnsFD int) (int, error) {
	c, err := sockdiag.Dial(netnsFD)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	n := 0
	err = c.Dump(unix.AF_UNSPEC, sockdiag.StateMask(sockdiag.StateFinWait2), func(s *sockdiag.Socket) error {
		if s.TimeWaitSock() && s.State == sockdiag.StateFinWait2 {
			n++
		}
		return nil
	})
	if errors.Is(err, sockdiag.ErrInterrupted) {
		err = nil
	}
	return n, err
}
