package session

import (
	"testing"

	"github.com/twtrace/twtrace/internal/tracertest"
	"github.com/twtrace/twtrace/tracer/kstat"
)

// Each namespace's own port range counts, less its reserved ports.
func TestEphemeralPortsPerNamespace(t *testing.T) {
	ns := tracertest.NewNetNS(t)
	if err := ns.Sysctl("net/ipv4/ip_local_port_range", "40000 40999"); err != nil {
		t.Fatal(err)
	}
	if err := ns.Sysctl("net/ipv4/ip_local_reserved_ports", "40010,40100-40109"); err != nil {
		t.Fatal(err)
	}
	r := start(t, Config{Namespaces: []int{ns.FD()}})
	if n, ok := r.s.EphemeralPorts(ns.Inode()); !ok || n != 1000-11 {
		t.Errorf("the namespace's: %d, %v; want 989", n, ok)
	}
	kr, err := kstat.NewReader("/proc")
	if err != nil {
		t.Fatal(err)
	}
	host, err := kr.Sysctls()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := host.EphemeralPorts()
	if n, ok := r.s.EphemeralPorts(r.s.HostNetNS()); !ok || n != want {
		t.Errorf("the host's: %d, %v; want %d", n, ok, want)
	}
	if n, ok := r.s.EphemeralPorts(1); ok {
		t.Errorf("a namespace nothing reaches: %d, ok", n)
	}
	// The namespace's other sysctls, read in it: what the Advice view and
	// advise quote for a failure there.
	sc := r.s.Sysctls(ns.Inode())
	if sc == nil || sc.PortRange != [2]int{40000, 40999} || sc.ReservedPorts != "40010,40100-40109" {
		t.Errorf("the namespace's sysctls: %+v", sc)
	}
	if hs := r.s.Sysctls(r.s.HostNetNS()); hs == nil || hs.PortRange != host.PortRange {
		t.Errorf("the host's sysctls: %+v; want port range %v", hs, host.PortRange)
	}
	if sc := r.s.Sysctls(1); sc != nil {
		t.Errorf("a namespace nothing reaches has sysctls: %+v", sc)
	}
}
