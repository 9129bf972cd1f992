package metrics

import (
	"sync"
	"time"

	"github.com/twtrace/twtrace/tracer/table"
)

// rangeTTL is how long a namespace's usable port count is trusted: the
// sysctls rarely change, and reading another namespace's costs a thread.
const rangeTTL = time.Minute

// rangeCacheMax bounds the namespaces remembered.
const rangeCacheMax = 1024

// freshRangesPerScrape bounds the ranges read at one scrape: with many
// namespaces the cache fills over a few scrapes (the busiest namespaces
// first, as Remotes lists them), and a scrape never reads them all.
const freshRangesPerScrape = 32

// rangeCache remembers each namespace's usable ephemeral ports.
type rangeCache struct {
	mu    sync.Mutex
	fn    func(netns uint32) (int, bool)
	perNS bool // fn reads each namespace's; else the host's stands for all
	m     map[uint32]rangeEntry
}

type rangeEntry struct {
	n  int
	ok bool
	at time.Time
}

func (c *rangeCache) init(cfg *Config) {
	c.m = map[uint32]rangeEntry{}
	c.fn, c.perNS = cfg.PortRange, cfg.PortRange != nil
	if c.fn == nil && cfg.Kernel != nil {
		k := cfg.Kernel
		c.fn = func(uint32) (int, bool) {
			s, err := k.Sysctls()
			if err != nil {
				return 0, false
			}
			return s.EphemeralPorts()
		}
	}
}

// lookup reads the ranges of the host's namespace and of the remotes',
// outside the exporter's lock, and returns a function that answers from
// them. A range that cannot be read is counted as a collect error.
func (c *rangeCache) lookup(now time.Time, host uint32, remotes []table.RemoteSummary, fail func(string)) func(uint32) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	got := map[uint32]rangeEntry{}
	fresh := 0
	need := func(ns uint32) {
		if _, ok := got[ns]; ok || c.fn == nil {
			return
		}
		e, ok := c.m[ns]
		if (!ok || now.Sub(e.at) >= rangeTTL) && fresh < freshRangesPerScrape {
			fresh++
			n, ok := c.fn(ns)
			if !ok {
				fail("port_range")
			}
			e = rangeEntry{n, ok, now}
			if len(c.m) >= rangeCacheMax {
				clear(c.m)
			}
			c.m[ns] = e
		}
		got[ns] = e
	}
	need(host)
	for i := range remotes {
		if c.perNS {
			need(remotes[i].NetNS)
		}
	}
	return func(ns uint32) (int, bool) {
		if !c.perNS {
			ns = host
		}
		e := got[ns]
		return e.n, e.ok
	}
}
