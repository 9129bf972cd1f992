package main

import (
	"errors"
	"strings"
	"testing"
)

// FuzzWhyArgs: whatever the port argument, --addr, --with and --user say,
// why either builds the bind it is asked about (the port and the address
// as given) or refuses with one line of usage, never a panic.
func FuzzWhyArgs(f *testing.F) {
	for _, s := range [][4]string{
		{"8080", "", "plain", ""}, {":443", "::1", "reuseaddr+reuseport", "0"}, {"0", "", "", ""},
		{"65536", "127.0.0.1", "reuseport", "root"}, {"80", "[::]", "both", "nobody"}, {"x", "fe80::1%eth0", "reuseaddr", "-1"},
	} {
		f.Add(s[0], s[1], s[2], s[3], false, false)
	}
	f.Fuzz(func(t *testing.T, port, addr, with, user string, v4, v6 bool) {
		oneLine := func(what string, err error) {
			var ue usageError
			if !errors.As(err, &ue) || strings.ContainsAny(err.Error(), "\n\r") || err.Error() == "" {
				t.Fatalf("%s: %q is not one line of usage", what, err)
			}
		}
		p, err := parsePort(port)
		if err != nil {
			oneLine("port "+port, err)
			return
		}
		if p == 0 {
			t.Fatalf("port %q parsed as 0", port)
		}
		o := whyOptions{addr: addr, with: with, user: user, ipv4: v4, ipv6: v6}
		a, err := o.attempt(p)
		if err != nil {
			oneLine("attempt", err)
			return
		}
		if a.Addr.Port() != p || !a.Addr.Addr().IsValid() {
			t.Fatalf("port %q --addr %q: the bind is to %v", port, addr, a.Addr)
		}
		if addr == "" && !a.Addr.Addr().IsUnspecified() {
			t.Fatalf("no --addr, yet the bind is to %v", a.Addr)
		}
	})
}
