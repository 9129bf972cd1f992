package kstat

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// testdata/proc holds this package's fixture /proc: netstat copied from a
// 6.18 kernel with the TIME_WAIT counters set to telling values.
const fixture = "testdata/proc"

func TestCountersFromFixture(t *testing.T) {
	r, err := NewReader(fixture)
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c.Time.IsZero() {
		t.Error("reading has no time")
	}
	want := Counters{Time: c.Time, TW: 1234, TWKilled: 7, TWRecycled: 5, TCPTimeWaitOverflow: 2,
		TimeWait: 42, Orphan: 3, InUse: 12}
	if c != want {
		t.Errorf("Counters =\n %+v\nwant %+v", c, want)
	}
}

func TestSysctlsFromFixture(t *testing.T) {
	r, err := NewReader(fixture)
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.Sysctls()
	if err != nil {
		t.Fatal(err)
	}
	want := Sysctls{PortRange: [2]int{32768, 60999}, ReservedPorts: "8080,9000-9010", UnprivPortStart: 1024,
		AutobindReuse: 0, TWReuse: 2, TWReuseDelayMs: 1000, Timestamps: 1, FinTimeout: 60,
		MaxTWBuckets: 131072, MaxSynBacklog: 2048, Syncookies: 1, SoMaxConn: 4096}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("Sysctls =\n %+v\nwant %+v", s, want)
	}
	v := s.Values()
	if len(v) != 12 || v["net.ipv4.ip_local_port_range"] != "32768\t60999" || v["net.ipv4.tcp_tw_reuse"] != "2" {
		t.Errorf("Values = %q", v)
	}
}

// copyFixture copies the fixture tree for a test that changes it.
func copyFixture(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	err := os.CopyFS(dst, os.DirFS(fixture))
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestSysctlMissingOnOlderKernel(t *testing.T) {
	root := copyFixture(t)
	if err := os.Remove(filepath.Join(root, "sys/net/ipv4/tcp_tw_reuse_delay")); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(root)
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.Sysctls()
	if err != nil {
		t.Fatal(err)
	}
	if s.TWReuseDelayMs != -1 || s.Has("net.ipv4.tcp_tw_reuse_delay") || !s.Has("net.ipv4.tcp_tw_reuse") {
		t.Errorf("without tcp_tw_reuse_delay: %+v", s)
	}
	if _, ok := s.Values()["net.ipv4.tcp_tw_reuse_delay"]; ok {
		t.Error("Values lists a missing sysctl")
	}
}

func TestBadFiles(t *testing.T) {
	for _, c := range []struct {
		name, file, content, want string
	}{
		{"garbled sysctl", "sys/net/ipv4/tcp_tw_reuse", "two\n", "tcp_tw_reuse"},
		{"one-ended port range", "sys/net/ipv4/ip_local_port_range", "32768\n", "2"},
		{"netstat without TcpExt", "net/netstat", "IpExt: InNoRoutes\nIpExt: 0\n", "no TcpExt"},
		{"netstat short values", "net/netstat", "TcpExt: TW TWKilled\nTcpExt: 1\n", "2 names but 1 values"},
		{"netstat without TW", "net/netstat", "TcpExt: TWKilled TWRecycled TCPTimeWaitOverflow\nTcpExt: 1 2 3\n", "TcpExt TW"},
		{"sockstat without TCP", "net/sockstat", "sockets: used 1\nUDP: inuse 0 mem 0\n", "no TCP"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := copyFixture(t)
			if err := os.WriteFile(filepath.Join(root, c.file), []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
			r, err := NewReader(root)
			if err != nil {
				t.Fatal(err)
			}
			_, err = r.Counters()
			if strings.HasPrefix(c.file, "sys/") {
				_, err = r.Sysctls()
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one mentioning %q", err, c.want)
			}
		})
	}
}

func TestParseNetstatPicksGroup(t *testing.T) {
	data := []byte("TcpExt: TW TWKilled\nTcpExt: 10 20\nIpExt: InNoRoutes InOctets\nIpExt: 0 18446744073709551615\n")
	got, err := parseNetstat(data, "IpExt")
	if err != nil {
		t.Fatal(err)
	}
	if got["InOctets"] != 18446744073709551615 || len(got) != 2 {
		t.Errorf("IpExt = %v", got)
	}
}

func TestSysctlsFromValues(t *testing.T) {
	r, err := NewReader("testdata/proc")
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.Sysctls()
	if err != nil {
		t.Fatal(err)
	}
	back := SysctlsFromValues(s.Values())
	if !reflect.DeepEqual(back, s) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, s)
	}
	empty := SysctlsFromValues(map[string]string{})
	if empty.Has("net.ipv4.tcp_tw_reuse") || empty.TWReuse != -1 || empty.PortRange != [2]int{-1, -1} {
		t.Errorf("from nothing: %+v", empty)
	}
}

func TestEphemeralPorts(t *testing.T) {
	for _, tc := range []struct {
		lo, hi   int
		reserved string
		want     int
		ok       bool
	}{
		{32768, 60999, "", 28232, true},
		{32768, 60999, "8080,9000-9010", 28232, true}, // outside the range
		{32768, 60999, "40000", 28231, true},
		{32768, 60999, "40000-40009,40005-40019, 60999", 28211, true}, // overlaps count once
		{1024, 1024, "1024", 0, true},
		{-1, -1, "", 0, false},
		{32768, 60999, "40000-39000", 0, false},
		{32768, 60999, "http", 0, false},
	} {
		s := Sysctls{PortRange: [2]int{tc.lo, tc.hi}, ReservedPorts: tc.reserved}
		if n, ok := s.EphemeralPorts(); n != tc.want || ok != tc.ok {
			t.Errorf("range %d-%d reserved %q: %d, %v; want %d, %v", tc.lo, tc.hi, tc.reserved, n, ok, tc.want, tc.ok)
		}
	}
}
