package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twtrace/twtrace/internal/tracertest"
)

// TestMain lets the test binary stand in for twchurn when --netns
// re-executes /proc/self/exe.
func TestMain(m *testing.M) {
	if _, ok := os.LookupEnv(parentEnv); ok {
		os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// churn runs the generator in this process and fails t on a setup error.
// A test that churns holds tracertest.LockBPF: its load must not run beside
// another package's exact counts.
func churn(t *testing.T, ctx context.Context, args ...string) *Result {
	t.Helper()
	cfg, err := parseFlags(append([]string{"--warmup", "0s", "-w", "2"}, args...), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(ctx, &cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// checkClean asserts that n connections completed, both ends, without error.
func checkClean(t *testing.T, res *Result, n uint64) {
	t.Helper()
	if res.ErrorsTotal != 0 {
		t.Errorf("errors: %v", res.Errors)
	}
	if res.Connections != n || res.Attempts != n || res.ServerClosed != n+res.WarmupConns {
		t.Errorf("connections %d attempts %d server ends %d (warmup %d), want %d",
			res.Connections, res.Attempts, res.ServerClosed, res.WarmupConns, n)
	}
	if res.Expected != n*TransitionsPerConn {
		t.Errorf("transitions expected %d, want %d", res.Expected, n*TransitionsPerConn)
	}
}

func TestChurnMaxRate(t *testing.T) {
	tracertest.LockBPF(t)
	for _, tc := range []struct{ name, args string }{
		{"client-close", "--close client"},
		{"server-close", "--close server"},
		{"client-close-ipv6", "--close client -6"},
		{"server-close-ipv6", "--close server -6"},
		{"one-endpoint-shared", "--addrs 1 -w 3 --inflight 1"}, // workers take each other's connections
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := churn(t, context.Background(), append(strings.Fields(tc.args), "--count", "2000", "--duration", "20s")...)
			checkClean(t, res, 2000)
			if res.Elapsed <= 0 || res.Elapsed > 20 || res.ConnPerSec <= 0 {
				t.Errorf("elapsed %v s, %v/s", res.Elapsed, res.ConnPerSec)
			}
		})
	}
}

func TestChurnFixedRate(t *testing.T) {
	tracertest.LockBPF(t)
	// Bounded by count: 1000 at 2000/s take half a second.
	res := churn(t, context.Background(), "--rate", "2000", "--count", "1000", "--duration", "10s")
	checkClean(t, res, 1000)
	if res.Elapsed < 0.49 || res.Elapsed > 0.6 {
		t.Errorf("1000 connections at 2000/s took %.3f s, want about 0.5", res.Elapsed)
	}
	// Accuracy is checked on a longer run by hand (see doc.go); a test
	// machine may be busy, so this only catches a wrong schedule.
	if res.RateErrPct < -5 || res.RateErrPct > 5 {
		t.Errorf("rate %.1f/s is %+.2f%% off 2000/s", res.ConnPerSec, res.RateErrPct)
	}

	// Bounded by time: 0.3 s at 2000/s start exactly 600.
	res = churn(t, context.Background(), "--rate", "2000", "--duration", "300ms")
	checkClean(t, res, 600)
}

func TestChurnWarmupExcluded(t *testing.T) {
	tracertest.LockBPF(t)
	res := churn(t, context.Background(), "--rate", "1000", "--warmup", "200ms", "--duration", "300ms")
	checkClean(t, res, 300)
	if res.WarmupConns != 200 {
		t.Errorf("warmup connections %d, want 200", res.WarmupConns)
	}
	if res.ExpectedRun != 500*TransitionsPerConn+2*uint64(len(res.Addrs)) {
		t.Errorf("transitions expected over the run %d", res.ExpectedRun)
	}
}

// An interrupt ends the run early, after the connections in flight finish.
func TestChurnInterrupt(t *testing.T) {
	tracertest.LockBPF(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	res := churn(t, ctx, "--duration", "30s")
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("interrupted run took %v", took)
	}
	if res.ErrorsTotal != 0 || res.Connections == 0 || res.Connections != res.Attempts ||
		res.ServerClosed != res.Connections {
		t.Errorf("connections %d attempts %d server ends %d errors %v",
			res.Connections, res.Attempts, res.ServerClosed, res.Errors)
	}
}

func TestRealMainJSON(t *testing.T) {
	tracertest.LockBPF(t)
	var out, errOut bytes.Buffer
	code := realMain([]string{"--json", "--count", "500", "--warmup", "0s", "--port", "0"}, &out, &errOut)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var res Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if res.Connections != 500 || res.Port == 0 || res.PerConn != 10 || res.Errors == nil {
		t.Errorf("result: %+v", res)
	}
	// The port a tracer should filter on is announced before the load starts.
	if !strings.Contains(errOut.String(), "port "+strconv.Itoa(res.Port)) {
		t.Errorf("stderr does not name port %d:\n%s", res.Port, errOut.String())
	}
}

func TestRealMainUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := realMain([]string{"--rate", "x"}, &out, &errOut); code != exitUsage {
		t.Errorf("bad flag: exit %d, want %d", code, exitUsage)
	}
	if code := realMain([]string{"--help"}, &out, &errOut); code != exitOK {
		t.Errorf("--help: exit %d", code)
	}
}

// The child side of --netns never writes a sysctl unless it really is in a
// new namespace.
func TestSetupNetNSRefusesHostNamespace(t *testing.T) {
	ino, err := netnsInode()
	if err != nil {
		t.Skip(err)
	}
	cfg := Config{PortRange: "1024 65535", TWReuse: -1, MaxTW: -1, Addrs: 1, Ports: 1}
	for _, parent := range []string{strconv.FormatUint(ino, 10), ""} {
		err := setupNetNS(&cfg, parent, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "refusing") {
			t.Errorf("parent %q: got %v, want a refusal", parent, err)
		}
	}
}

func TestSummaryLine(t *testing.T) {
	r := &Result{Connections: 1000, Elapsed: 0.5, ConnPerSec: 2000, Rate: 2000, Close: "client",
		Family: "ipv4", Workers: 2, ErrorsTotal: 3, PerConn: 10, Expected: 10000,
		Errors: map[string]uint64{"connect:EADDRNOTAVAIL": 2, "read:ECONNRESET": 1}, MachineBusy: -1}
	var b strings.Builder
	if err := r.writeSummary(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1000 connections", "2000/s", "target 2000/s", "3 errors",
		"connect:EADDRNOTAVAIL 2, read:ECONNRESET 1", "10000 transitions expected"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
}
