package demo

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/tracer/advice"
	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/session"
	"github.com/twtrace/twtrace/tracer/sockdiag"
)

// why runs `twtrace why`'s diagnosis in the lesson's namespace and shows
// its verdict and first fix.
func (e *env) why(a advice.Attempt) *advice.PortReport {
	if e.err != nil {
		return nil
	}
	p := session.NewPortProbe(e.nsFD, "/proc")
	defer p.Close()
	f, err := p.Facts(a.Addr.Port())
	if err != nil {
		e.fail(err)
		return nil
	}
	r := advice.DiagnosePort(f, a)
	cmd := fmt.Sprintf("twtrace why %d --addr %s", a.Addr.Port(), a.Addr.Addr())
	if a.Options != 0 {
		cmd += " --with " + a.Options.String()
	}
	if a.UID != 0 {
		cmd += fmt.Sprintf(" --user %d", a.UID)
	}
	e.show(Line{Kind: LineVerdict, Report: &r, Text: cmd + "   (in the lesson's namespace)"})
	return &r
}

// advise runs the advisor on what the session saw in the lesson's
// namespace, as `twtrace advise` does, and shows the finding with code.
func (e *env) advise(code string) *advice.Finding {
	if e.err != nil {
		return nil
	}
	ns, _, err := session.NamespaceFacts(e.nsFD, nil)
	if err != nil {
		e.failf("read the lesson's namespace for the advisor: %w", err)
		return nil
	}
	tab := e.sess.Table()
	facts := advice.Facts{
		Now: time.Now(), Namespaces: map[uint32]*advice.NetNS{e.netns: ns},
		Ports: tab.Ports(), Processes: tab.Processes(), Remotes: tab.Remotes(),
	}
	for _, ev := range e.rec.count(0, func(ev *event.Event) bool { return ev.Ret < 0 }) {
		facts.Failures = append(facts.Failures, advice.DiagnoseFailure(tab, &ev, ns.Sysctls))
	}
	var codes []string
	for _, f := range advice.Advise(&facts) {
		if f.Code == code {
			e.show(Line{Kind: LineFinding, Finding: &f, Text: "twtrace advise   (on what the tracer saw in the lesson's namespace)"})
			return &f
		}
		codes = append(codes, f.Code)
	}
	e.failf("the advisor did not find %s (it found %s)", code, orNone(codes))
	return nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "nothing"
	}
	return strings.Join(s, ", ")
}

// waitTimeWait waits until the TIME_WAIT on local port port has ended, as
// the tracer reports it: a countdown to until, ended early by the person
// (or at once with --skip-wait) with SOCK_DESTROY inside the namespace.
func (e *env) waitTimeWait(port uint16, until time.Time) *event.Event {
	if e.err != nil {
		return nil
	}
	end := timeWaitEnd(port)
	bound := max(time.Until(until), 0) + reconcileWithin
	ended := make(chan struct{})
	go func() {
		if _, err := e.rec.wait(e.ctx, e.mark, 1, bound, "", end); err == nil {
			close(ended)
		}
	}()
	skip := e.cfg.SkipWait
	if skip {
		e.say("--skip-wait: not waiting the %s it has left.", roundSeconds(time.Until(until)))
	} else {
		var err error
		skip, err = e.cfg.Narrator.Countdown(e.ctx, until, ended)
		e.fail(err)
	}
	if skip {
		e.say("Ending it now with the kernel's own means, inside the lesson's namespace: a SOCK_DESTROY " +
			"through sock_diag, what `ss -K` does. (A real deploy waits, or uses SO_REUSEPORT: see zero-downtime-restart.)")
		e.destroyTimeWait(port)
		bound = reconcileWithin
	}
	if evs := e.expectFrom(e.mark, "the TIME_WAIT's end", 1, bound, end); evs != nil {
		return &evs[0]
	}
	return nil
}

func roundSeconds(d time.Duration) string {
	return fmt.Sprintf("%d s", int(max(d, 0).Round(time.Second).Seconds()))
}

// destroyTimeWait ends every TIME_WAIT socket on local port port of the
// lesson's namespace.
func (e *env) destroyTimeWait(port uint16) {
	if e.err == nil {
		e.fail(destroyTimeWait(e.nsFD, port))
	}
}

func destroyTimeWait(nsFD int, port uint16) error {
	c, err := sockdiag.Dial(nsFD)
	if err != nil {
		return fmt.Errorf("open sock_diag in the lesson's namespace: %w", err)
	}
	defer c.Close()
	var tws []sockdiag.Socket
	err = c.Dump(unix.AF_UNSPEC, sockdiag.StateMask(sockdiag.StateTimeWait, sockdiag.StateFinWait2), func(s *sockdiag.Socket) error {
		if s.TimeWaitSock() && s.Src.Port() == port {
			tws = append(tws, *s)
		}
		return nil
	})
	if err != nil && !errors.Is(err, sockdiag.ErrInterrupted) {
		return err
	}
	if len(tws) == 0 {
		return fmt.Errorf("sock_diag lists no TIME_WAIT on port %d to end", port)
	}
	for i := range tws {
		err := c.Destroy(&tws[i])
		switch {
		case errors.Is(err, unix.EOPNOTSUPP):
			return fmt.Errorf("this kernel cannot end a socket early (CONFIG_INET_DIAG_DESTROY is off): run without --skip-wait: %w", err)
		case err != nil && !errors.Is(err, unix.ENOENT): // ENOENT: it ended by itself in between
			return err
		}
	}
	return nil
}
