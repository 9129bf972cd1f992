package main

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Limits that keep every run bounded and every flag meaningful.
const (
	maxDuration = 24 * time.Hour
	maxWorkers  = 256
	maxInflight = 1024
	maxAddrs    = 64
	maxPorts    = 16 // twtrace's kernel-side filter holds 16 ports
	maxMsgSize  = 1024
	maxRate     = 10_000_000
)

// closeSide says which end of a connection closes first.
type closeSide int

const (
	closeClient closeSide = iota
	closeServer
)

func (s closeSide) String() string {
	if s == closeServer {
		return "server"
	}
	return "client"
}

// Config is one run of the generator, validated.
type Config struct {
	Close     closeSide
	Rate      int           // connections per second; 0 = as fast as possible
	PaceSlack time.Duration // a paced start may run this much before it is due
	Count     uint64        // measured connections; 0 = until Duration
	Duration  time.Duration // hard bound of the measured phase
	Warmup    time.Duration // run before the measured phase, not counted
	Workers   int
	Inflight  int // client connections per worker at once
	IPv6      bool
	Port      int // the first server port; 0 = a free one, printed
	Ports     int // consecutive server ports from Port
	Addrs     int // IPv4 loopback addresses, from 127.0.0.1
	MsgSize   int
	Timeout   time.Duration // per connection
	JSON      bool
	Interval  time.Duration // print progress this often; 0 = never

	NetNS     bool
	PortRange string // namespace only: net.ipv4.ip_local_port_range
	TWReuse   int    // namespace only: net.ipv4.tcp_tw_reuse; -1 = kernel default
	MaxTW     int    // namespace only: net.ipv4.tcp_max_tw_buckets; -1 = enough for all 4-tuples
}

// errHelp is returned for --help: usage was printed, exit 0.
var errHelp = errors.New("help requested")

// parseFlags reads the command line into a validated Config. Errors are
// usage errors; usage text for --help goes to out.
func parseFlags(args []string, out io.Writer) (Config, error) {
	var (
		cfg   Config
		close string
	)
	fs := pflag.NewFlagSet("twchurn", pflag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&close, "close", "client", "which `side` closes first: client or server (the other closes on EOF)")
	fs.IntVar(&cfg.Rate, "rate", 0, "`N` connections per second, paced evenly; 0 = as fast as possible")
	fs.DurationVar(&cfg.PaceSlack, "pace-slack", 100*time.Microsecond,
		"with --rate: a start may run this early, to share a wake-up with the next (0: each on time)")
	fs.Uint64Var(&cfg.Count, "count", 0, "stop after starting `N` measured connections (0: run for --duration)")
	fs.DurationVar(&cfg.Duration, "duration", 60*time.Second, "hard maximum of the measured phase")
	fs.DurationVar(&cfg.Warmup, "warmup", time.Second, "run this long before measuring; not counted")
	fs.IntVarP(&cfg.Workers, "workers", "w", runtime.NumCPU(), "worker threads, each a client and a server")
	fs.IntVar(&cfg.Inflight, "inflight", 2, "client connections each worker keeps open at once (at most)")
	fs.BoolVarP(&cfg.IPv6, "ipv6", "6", false, "use ::1 instead of 127.0.0.1")
	fs.IntVarP(&cfg.Port, "port", "p", 0, "server `port`, the first of --ports (0: pick a free one and print it)")
	fs.IntVar(&cfg.Addrs, "addrs", 8, "IPv4: listen on 127.0.0.1 to 127.0.0.`N` (more 4-tuples, see doc.go)")
	fs.IntVar(&cfg.Ports, "ports", 1, "listen on `N` consecutive ports (default 8 with -6, which has one address)")
	fs.IntVar(&cfg.MsgSize, "size", 16, "request and reply size in `bytes`")
	fs.DurationVar(&cfg.Timeout, "timeout", 5*time.Second, "a connection taking longer is an error")
	fs.BoolVar(&cfg.JSON, "json", false, "print one JSON object instead of the summary line")
	fs.DurationVar(&cfg.Interval, "interval", 0, "print the rate so far to stderr this often (0: never)")
	fs.BoolVar(&cfg.NetNS, "netns", false, "run in a new private network namespace (root)")
	fs.StringVar(&cfg.PortRange, "port-range", "1024 65535", "with --netns: the namespace's ip_local_port_range")
	fs.IntVar(&cfg.TWReuse, "tw-reuse", -1, "with --netns: the namespace's tcp_tw_reuse (0, 1, 2; -1 = kernel default)")
	fs.IntVar(&cfg.MaxTW, "max-tw", -1, "with --netns: the namespace's tcp_max_tw_buckets (-1: one per possible 4-tuple, so none overflows)")
	fs.Usage = func() {
		fmt.Fprint(out, "Usage: twchurn [flags]\n\n"+
			"Opens, uses and closes loopback TCP connections as fast as possible or at a\n"+
			"fixed rate, and reports connections/s, errors and CPU time.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return cfg, errHelp
		}
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch close {
	case "client":
		cfg.Close = closeClient
	case "server":
		cfg.Close = closeServer
	default:
		return cfg, fmt.Errorf("--close %q: want client or server", close)
	}
	if cfg.IPv6 {
		// ::1 is the only IPv6 loopback address: more ports instead give
		// the client-close case the 4-tuples that more addresses give IPv4.
		if !fs.Changed("addrs") {
			cfg.Addrs = 1
		}
		if !fs.Changed("ports") {
			cfg.Ports = 8
		}
	}
	if !cfg.NetNS {
		for _, name := range []string{"port-range", "tw-reuse", "max-tw"} {
			if fs.Changed(name) {
				return cfg, fmt.Errorf("--%s changes a sysctl and needs --netns: twchurn never changes the host's", name)
			}
		}
	}
	return cfg, cfg.validate()
}

// validate checks ranges; every error names the flag.
func (c *Config) validate() error {
	switch {
	case c.Rate < 0 || c.Rate > maxRate:
		return fmt.Errorf("--rate %d: want 0 (as fast as possible) to %d", c.Rate, maxRate)
	case c.PaceSlack < 0 || c.PaceSlack > 10*time.Millisecond:
		return fmt.Errorf("--pace-slack %v: want 0 to 10ms", c.PaceSlack)
	case c.Duration <= 0 || c.Duration > maxDuration:
		return fmt.Errorf("--duration %v: want more than 0 and at most %v", c.Duration, maxDuration)
	case c.Warmup < 0 || c.Warmup > maxDuration:
		return fmt.Errorf("--warmup %v: want 0 to %v", c.Warmup, maxDuration)
	case c.Workers < 1 || c.Workers > maxWorkers:
		return fmt.Errorf("--workers %d: want 1 to %d", c.Workers, maxWorkers)
	case c.Inflight < 1 || c.Inflight > maxInflight:
		return fmt.Errorf("--inflight %d: want 1 to %d", c.Inflight, maxInflight)
	case c.Port < 0 || c.Port > 65535:
		return fmt.Errorf("--port %d: want 1 to 65535, or 0 for any free port", c.Port)
	case c.Addrs < 1 || c.Addrs > maxAddrs:
		return fmt.Errorf("--addrs %d: want 1 to %d", c.Addrs, maxAddrs)
	case c.Ports < 1 || c.Ports > maxPorts:
		return fmt.Errorf("--ports %d: want 1 to %d (what twtrace can filter on)", c.Ports, maxPorts)
	case c.Port+c.Ports-1 > 65535:
		return fmt.Errorf("--port %d --ports %d: the last port would be over 65535", c.Port, c.Ports)
	case c.IPv6 && c.Addrs != 1:
		return fmt.Errorf("--addrs %d with -6: ::1 is the only IPv6 loopback address", c.Addrs)
	case c.MsgSize < 1 || c.MsgSize > maxMsgSize:
		return fmt.Errorf("--size %d: want 1 to %d bytes", c.MsgSize, maxMsgSize)
	case c.Timeout <= 0 || c.Timeout > time.Minute:
		return fmt.Errorf("--timeout %v: want more than 0 and at most 1m", c.Timeout)
	case c.Interval < 0 || (c.Interval > 0 && c.Interval < 10*time.Millisecond):
		return fmt.Errorf("--interval %v: want 0 (off) or at least 10ms", c.Interval)
	case c.TWReuse < -1 || c.TWReuse > 2:
		return fmt.Errorf("--tw-reuse %d: want 0, 1, 2 or -1 (kernel default)", c.TWReuse)
	case c.MaxTW < -1:
		return fmt.Errorf("--max-tw %d: want 0 or more, or -1 (enough for every 4-tuple)", c.MaxTW)
	}
	if c.NetNS {
		if _, _, err := parsePortRange(c.PortRange); err != nil {
			return fmt.Errorf("--port-range %q: %w", c.PortRange, err)
		}
	}
	return nil
}

// parsePortRange reads "LOW HIGH" as the sysctl writes it.
func parsePortRange(s string) (lo, hi int, err error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, 0, errors.New("want two ports, \"LOW HIGH\"")
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || lo < 1 || hi > 65535 || lo > hi {
		return 0, 0, errors.New("want 1 <= LOW <= HIGH <= 65535")
	}
	return lo, hi, nil
}
