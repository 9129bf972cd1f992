package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/tracer"
	"github.com/twtrace/twtrace/tracer/advice"
	"github.com/twtrace/twtrace/tracer/session"
	"github.com/twtrace/twtrace/tracer/stream"
)

// whyOptions are the flags of `twtrace why`.
type whyOptions struct {
	addr    string
	ipv4    bool
	ipv6    bool
	with    string
	user    string
	json    bool
	wait    time.Duration
	netns   string
	verbose bool
}

// errBlocked is why's "the port is blocked": exit code 1, like grep's "no
// match", with nothing more on stderr (the report said it).
var errBlocked = errors.New("blocked")

func newWhyCmd(stdout, stderr io.Writer) *cobra.Command {
	o := &whyOptions{}
	cmd := &cobra.Command{
		Use:   "why PORT",
		Short: "Say who holds a port and what a new bind() on it would meet, with the fix",
		Long: `why reads the kernel's own tables once (sock_diag, including bound-only sockets;
the sockets' SO_REUSEADDR/SO_REUSEPORT through a BPF iterator; their
processes from /proc) and says who holds PORT, every socket on it by state,
when its last TIME_WAIT ends, and what a new bind() would get for each way a
program might try it: plain, SO_REUSEADDR, SO_REUSEPORT or both, on the
address and on the IPv6 wildcard with and without IPV6_V6ONLY. Then the
verdict for the bind you mean (--addr, --with, --user) and the fixes that
work on this kernel. The JSON is described in docs/why.md.

Exit status, like grep: 0 the port is free for that bind, 1 it is blocked,
2 bad usage or an error, 3 a missing privilege. Deploy scripts branch on it:

  twtrace why 8080 --wait 90s && systemctl start myapp

Without BPF privilege the answers that depend on the sockets' options are
marked uncertain (?) and a note says why.`,
		Example: `  twtrace why 8080
  twtrace why 8080 --addr 127.0.0.1 --with reuseaddr
  twtrace why 443 -6 --json
  twtrace why 8080 --wait 90s && systemctl start myapp`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("why needs one PORT, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runWhy(cmd.Context(), o, args[0], stdout, stderr)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.addr, "addr", "", "the `address` the new socket binds (default 0.0.0.0, or [::] with -6)")
	fs.BoolVarP(&o.ipv4, "ipv4", "4", false, "the new socket is IPv4 (0.0.0.0 unless --addr)")
	fs.BoolVarP(&o.ipv6, "ipv6", "6", false, "the new socket is IPv6 ([::], dual-stack, unless --addr)")
	fs.StringVar(&o.with, "with", "plain", "the new socket's `options`: plain, reuseaddr, reuseport or reuseaddr+reuseport")
	fs.StringVar(&o.user, "user", "", "the `user` (name or uid) the new socket runs as (default: yours)")
	fs.BoolVar(&o.json, "json", false, "write the report as one JSON object (docs/why.md)")
	fs.DurationVar(&o.wait, "wait", 0, "wait up to this long for the port to be free (e.g. 90s)")
	fs.StringVarP(&o.netns, "net", "N", "", "ask in this network namespace: a name from `ip netns` or a path such as /proc/PID/ns/net")
	return cmd
}

// attempt builds the bind the verdict is for.
func (o *whyOptions) attempt(port uint16) (advice.Attempt, error) {
	var a advice.Attempt
	if o.ipv4 && o.ipv6 {
		return a, usagef("-4 and -6 exclude each other")
	}
	ip := netip.IPv4Unspecified()
	if o.ipv6 {
		ip = netip.IPv6Unspecified()
	}
	if o.addr != "" {
		var err error
		ip, err = netip.ParseAddr(strings.Trim(o.addr, "[]"))
		if err != nil || ip.Zone() != "" {
			return a, usagef("--addr %q: want an IPv4 or IPv6 address such as 127.0.0.1 or ::1", o.addr)
		}
		if (o.ipv4 && !ip.Unmap().Is4()) || (o.ipv6 && !ip.Is6()) {
			return a, usagef("--addr %s is not of the family -4/-6 asks for", ip)
		}
	}
	opts, ok := advice.ParseOptions(o.with)
	if !ok {
		return a, usagef("--with %q: want plain, reuseaddr, reuseport or reuseaddr+reuseport", o.with)
	}
	uid := uint32(os.Geteuid())
	if o.user != "" {
		u, err := lookupUID(o.user)
		if err != nil {
			return a, usagef("--user %q: %v", o.user, err)
		}
		uid = u
	}
	if o.wait < 0 {
		return a, usagef("--wait cannot be negative")
	}
	return advice.Attempt{Addr: netip.AddrPortFrom(ip, port), Options: opts, UID: uid}, nil
}

// parsePort reads a port argument.
func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimPrefix(s, ":"), 10, 16)
	if err != nil || n == 0 {
		return 0, usagef("port %q: want a number from 1 to 65535", s)
	}
	return uint16(n), nil
}

func runWhy(ctx context.Context, o *whyOptions, arg string, stdout, stderr io.Writer) error {
	port, err := parsePort(arg)
	if err != nil {
		return err
	}
	want, err := o.attempt(port)
	if err != nil {
		return err
	}
	nsFD, err := openNetNSFlag(o.netns)
	if err != nil {
		return err
	}
	if nsFD >= 0 {
		defer unix.Close(nsFD)
	}
	probe := session.NewPortProbe(nsFD, "/proc")
	defer probe.Close()
	report, err := whyOnce(probe, port, want)
	if err != nil {
		return err
	}
	if o.wait > 0 && report.Verdict != "free" {
		report, err = waitFree(ctx, probe, port, want, o.wait, report, stderr)
		if err != nil {
			return err
		}
	}
	if o.json {
		b, err := whyJSON(&report)
		if err != nil {
			return err
		}
		if _, err := stdout.Write(b); err != nil {
			return err
		}
	} else if err := stream.WritePortReport(stdout, &report, colorful(stdout)); err != nil {
		return err
	}
	if report.Verdict != "free" {
		return errBlocked
	}
	return nil
}

// whyJSON is the report as `why --json` writes it (docs/why.md), and as
// serve's /why answers.
func whyJSON(r *advice.PortReport) ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func whyOnce(p *session.PortProbe, port uint16, want advice.Attempt) (advice.PortReport, error) {
	f, err := p.Facts(port)
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			return advice.PortReport{}, &tracer.FeatureError{Missing: "CAP_SYS_ADMIN",
				Reason: "reading another network namespace's sockets needs CAP_SYS_ADMIN, which this process lacks",
				Fix:    "run twtrace as root", Err: err}
		}
		return advice.PortReport{}, err
	}
	return advice.DiagnosePort(f, want), nil
}

// waitFree asks again every 250 ms until the port is free or d has passed;
// on a terminal one line counts down.
func waitFree(ctx context.Context, p *session.PortProbe, port uint16, want advice.Attempt, d time.Duration,
	r advice.PortReport, stderr io.Writer) (advice.PortReport, error) {
	deadline := time.Now().Add(d)
	tty := isTerminal(stderr)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for r.Verdict != "free" {
		left := time.Until(deadline)
		if tty {
			fmt.Fprintf(stderr, "\r\x1b[Kwaiting for port %d: %s (%s left)", port, firstCause(&r), left.Truncate(time.Second))
		}
		if left <= 0 {
			break
		}
		select {
		case <-ctx.Done():
			if tty {
				fmt.Fprint(stderr, "\r\x1b[K")
			}
			return r, nil
		case <-tick.C:
		}
		next, err := whyOnce(p, port, want)
		if err != nil {
			return r, err
		}
		r = next
	}
	if tty {
		fmt.Fprint(stderr, "\r\x1b[K")
	}
	return r, nil
}

func firstCause(r *advice.PortReport) string {
	if len(r.Findings) > 0 {
		return r.Findings[0].Cause
	}
	return "blocked"
}

// openNetNSFlag opens the namespace -N names, or returns -1 for none given.
func openNetNSFlag(s string) (int, error) {
	if s == "" {
		return -1, nil
	}
	return openNetNS(s)
}

// openNetNS opens a network namespace by name (/run/netns/NAME) or path.
func openNetNS(s string) (int, error) {
	path := s
	if !strings.Contains(s, "/") {
		path = "/run/netns/" + s
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, usagef("-N %s: cannot open %s: %v (want a name from `ip netns` or a path such as /proc/PID/ns/net)", s, path, err)
	}
	// NS_GET_NSTYPE tells a network namespace from the other kinds of
	// namespace files (and says no to anything else).
	if t, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE); err != nil || t != unix.CLONE_NEWNET {
		unix.Close(fd)
		return -1, usagef("-N %s: %s is not a network namespace", s, path)
	}
	return fd, nil
}

// lookupUID reads a user name or a uid.
func lookupUID(s string) (uint32, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return uint32(n), nil
	}
	u, err := user.Lookup(s)
	if err != nil {
		return 0, fmt.Errorf("no such user: give a user name or a numeric uid")
	}
	n, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("user %s has no numeric uid", s)
	}
	return uint32(n), nil
}
