package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/twtrace/twtrace/internal/tracertest"
)

// netnsRun runs twchurn --netns (re-executing this test binary, see
// TestMain) and decodes its JSON.
func netnsRun(t *testing.T, wantCode int, args ...string) (*Result, string) {
	t.Helper()
	tracertest.Require(t)
	tracertest.LockBPF(t) // its load must not run beside another package's exact counts
	var out, errOut bytes.Buffer
	args = append([]string{"--netns", "--json", "--warmup", "0s", "-w", "2"}, args...)
	if code := realMain(args, &out, &errOut); code != wantCode {
		t.Fatalf("twchurn %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, wantCode, out.String(), errOut.String())
	}
	var res Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v: %q\n%s", err, out.String(), errOut.String())
	}
	return &res, errOut.String()
}

// In its own namespace the kernel's TCP counters count this run alone, so
// they must agree exactly with what twchurn says it did.
func TestNetNSCountersAgree(t *testing.T) {
	for _, close := range []string{"client", "server"} {
		t.Run(close, func(t *testing.T) {
			res, stderr := netnsRun(t, exitOK, "--close", close, "--count", "2000", "--duration", "20s")
			checkClean(t, res, 2000)
			if !res.NetNS || res.KernelScope != "netns" {
				t.Errorf("netns %v, kernel scope %q", res.NetNS, res.KernelScope)
			}
			if !strings.Contains(stderr, "ip_local_port_range=1024 65535") {
				t.Errorf("namespace sysctls not reported:\n%s", stderr)
			}
			k := res.KernelRun
			for name, want := range map[string]int64{
				"ActiveOpens": 2000, "PassiveOpens": 2000, "TW": 2000, // one TIME_WAIT per connection
				"OutRsts": 0, "EstabResets": 0, "AttemptFails": 0, // FIN closes only
				"TCPAbortOnClose": 0, "TCPAbortOnData": 0, "TCPTimeWaitOverflow": 0,
			} {
				if got, ok := k[name]; !ok || got != want {
					t.Errorf("%s = %d (present %v), want %d", name, got, ok, want)
				}
			}
		})
	}
}

// Out of ports: with ten ephemeral ports and no TIME_WAIT reuse, connect()
// fails with EADDRNOTAVAIL after ten connections, and twchurn says so.
func TestNetNSPortExhaustionReported(t *testing.T) {
	res, _ := netnsRun(t, exitFailure, "--port", "45000", "--addrs", "1", "--port-range", "40000 40009",
		"--tw-reuse", "0", "--count", "50", "--duration", "10s")
	if res.Connections != 10 || res.Attempts != 50 {
		t.Errorf("connections %d of %d attempts, want 10 of 50", res.Connections, res.Attempts)
	}
	if got := res.Errors["connect:EADDRNOTAVAIL"]; got != 40 || res.ErrorsTotal != 40 {
		t.Errorf("errors %v, want connect:EADDRNOTAVAIL 40", res.Errors)
	}
}
