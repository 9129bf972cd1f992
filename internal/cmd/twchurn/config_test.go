package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseFlagsDefaults(t *testing.T) {
	cfg, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Close != closeClient || cfg.Rate != 0 || cfg.Duration != 60*time.Second ||
		cfg.Addrs != 8 || cfg.Ports != 1 || cfg.IPv6 || cfg.NetNS || cfg.Workers < 1 {
		t.Errorf("defaults: %+v", cfg)
	}
	cfg, err = parseFlags([]string{"-6"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// One IPv6 loopback address: the 4-tuples come from ports instead.
	if cfg.Addrs != 1 || cfg.Ports != 8 {
		t.Errorf("-6: addrs %d ports %d, want 1 and 8", cfg.Addrs, cfg.Ports)
	}
}

func TestParseFlagsValid(t *testing.T) {
	cfg, err := parseFlags(strings.Fields(
		"--close server --rate 5000 --count 1000 --duration 2s --warmup 0s -w 3 --inflight 1 "+
			"--port 40000 --ports 4 --addrs 2 --size 100 --json --netns --port-range 2000_3000 --tw-reuse 1 --max-tw 0"),
		io.Discard)
	if err == nil {
		t.Fatal("--port-range with an underscore: want an error")
	}
	args := []string{"--close", "server", "--rate", "5000", "--count", "1000", "--duration", "2s",
		"--warmup", "0s", "-w", "3", "--port", "40000", "--ports", "4", "--addrs", "2",
		"--netns", "--port-range", "2000 3000", "--tw-reuse", "1", "--max-tw", "0"}
	cfg, err = parseFlags(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Close: closeServer, Rate: 5000, PaceSlack: 100 * time.Microsecond, Count: 1000, Duration: 2 * time.Second,
		Workers: 3, Inflight: 2, Port: 40000, Ports: 4, Addrs: 2, MsgSize: 16, Timeout: 5 * time.Second,
		NetNS: true, PortRange: "2000 3000", TWReuse: 1, MaxTW: 0}
	if cfg != want {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
}

func TestParseFlagsInvalid(t *testing.T) {
	for _, tc := range []struct {
		args, want string
	}{
		{"--close both", "--close"},
		{"--rate -1", "--rate"},
		{"--pace-slack 20ms", "--pace-slack"},
		{"--duration 0s", "--duration"},
		{"--duration 25h", "--duration"},
		{"--warmup -1s", "--warmup"},
		{"-w 0", "--workers"},
		{"-w 1000", "--workers"},
		{"--inflight 0", "--inflight"},
		{"--port 70000", "--port"},
		{"--port 65535 --ports 2", "over 65535"},
		{"--ports 17", "--ports"},
		{"--addrs 0", "--addrs"},
		{"-6 --addrs 2", "::1"},
		{"--size 0", "--size"},
		{"--size 4096", "--size"},
		{"--timeout 0s", "--timeout"},
		{"--interval 1ms", "--interval"},
		{"--port-range 1024_2048", "needs --netns"}, // never a host sysctl
		{"--tw-reuse 1", "needs --netns"},
		{"--max-tw 10", "needs --netns"},
		{"--netns --tw-reuse 3", "--tw-reuse"},
		{"--netns --port-range 9_8", "--port-range"},
		{"--netns --max-tw -2", "--max-tw"},
		{"extra", "unexpected argument"},
		{"--bogus", "unknown flag"},
	} {
		args := strings.Fields(strings.ReplaceAll(tc.args, "_", " "))
		if strings.Contains(tc.args, "port-range") { // keep "LOW HIGH" one argument
			args = strings.SplitN(tc.args, " ", 3)
			args[len(args)-1] = strings.ReplaceAll(args[len(args)-1], "_", " ")
		}
		_, err := parseFlags(args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}

func TestParseFlagsHelp(t *testing.T) {
	var b strings.Builder
	if _, err := parseFlags([]string{"--help"}, &b); err != errHelp {
		t.Fatalf("--help: got %v, want errHelp", err)
	}
	if !strings.Contains(b.String(), "--close") || !strings.Contains(b.String(), "--netns") {
		t.Errorf("usage text lacks flags:\n%s", b.String())
	}
}

func TestParsePortRange(t *testing.T) {
	for _, tc := range []struct {
		in     string
		lo, hi int
		ok     bool
	}{
		{"1024 65535", 1024, 65535, true},
		{"32768\t60999\n", 32768, 60999, true},
		{"5 5", 5, 5, true},
		{"0 100", 0, 0, false},
		{"100 99", 0, 0, false},
		{"100", 0, 0, false},
		{"1 65536", 0, 0, false},
		{"a b", 0, 0, false},
	} {
		lo, hi, err := parsePortRange(tc.in)
		if (err == nil) != tc.ok || lo != tc.lo || hi != tc.hi {
			t.Errorf("%q: got %d %d %v", tc.in, lo, hi, err)
		}
	}
}
