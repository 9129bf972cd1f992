package capture

import (
	"bytes"
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/twtrace/twtrace/tracer/event"

	"github.com/twtrace/twtrace/internal/sample"
	"github.com/twtrace/twtrace/tracer/table"
)

func TestRedactorTokens(t *testing.T) {
	r := newRedactor([]byte("a fixed key for the test"))
	seen := map[netip.Addr]netip.Addr{}
	for _, s := range []string{"127.0.0.1", "10.0.0.5", "10.0.0.9", "192.168.1.1", "::1", "2001:db8::1", "fe80::1", "::ffff:10.0.0.5"} {
		a := netip.MustParseAddr(s)
		tok := r.Addr(a)
		switch {
		case tok == a:
			t.Errorf("%s is not redacted", a)
		case a.Is4() && (!tok.Is4() || tok.As4()[0]&0xf0 != 0xf0):
			t.Errorf("%s -> %s: want an IPv4 token in 240.0.0.0/4", a, tok)
		case a.Is4In6() && (!tok.Is4In6() || tok.Unmap() != r.Addr(a.Unmap())):
			t.Errorf("%s -> %s: want the mapped token of %s", a, tok, r.Addr(a.Unmap()))
		case a.Is6() && !a.Is4In6() && !netip.MustParsePrefix("2001:db8::/32").Contains(tok):
			t.Errorf("%s -> %s: want an IPv6 token in 2001:db8::/32", a, tok)
		case r.Addr(a) != tok:
			t.Errorf("%s: not stable", a)
		}
		for b, other := range seen {
			if other == tok && b != a {
				t.Errorf("%s and %s share the token %s", a, b, tok)
			}
		}
		seen[a] = tok
	}
	for _, s := range []string{"0.0.0.0", "::"} {
		if a := netip.MustParseAddr(s); r.Addr(a) != a {
			t.Errorf("the wildcard %s was redacted", a)
		}
	}
	// Another capture, another key: other tokens.
	if newRedactor([]byte("another key")).Addr(netip.MustParseAddr("10.0.0.5")) == seen[netip.MustParseAddr("10.0.0.5")] {
		t.Error("two keys give the same token")
	}
	if h := r.Host("web-1.prod.example.com"); !strings.HasPrefix(h, "redacted-") || strings.Contains(h, "web") || h != r.Host("web-1.prod.example.com") {
		t.Errorf("host token %q", h)
	}
}

// Collisions are resolved: distinct addresses never share a token, even
// when the keyed hash of two of them agrees in its first 28 bits.
func TestRedactorCollisions(t *testing.T) {
	r := newRedactor([]byte("k"))
	toks := map[netip.Addr]netip.Addr{}
	for i := range 1 << 16 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1})
		tok := r.Addr(a)
		if prev, ok := toks[tok]; ok {
			t.Fatalf("%s and %s share %s", prev, a, tok)
		}
		toks[tok] = a
	}
}

// A redacted capture holds none of the original addresses nor the host
// name, reads back, and rebuilds a table with the same shape: the refused
// bind() still meets its listener and TIME_WAIT.
func TestRedactedCapture(t *testing.T) {
	red, err := NewRedactor()
	if err != nil {
		t.Fatal(err)
	}
	data := withSnapshot(t, Options{Redact: red})
	for _, s := range []string{"127.0.0.1", "10.0.0.5", "10.0.0.9", "::1", "2001:db8::1\"", "web-1"} {
		if bytes.Contains(data, []byte(s)) {
			t.Errorf("the redacted capture holds %q", s)
		}
	}
	r, err := NewReader(bytes.NewReader(data), "mem")
	if err != nil {
		t.Fatal(err)
	}
	if h := r.Header(); !h.Redacted || !strings.HasPrefix(h.Host, "redacted-") {
		t.Errorf("header %+v", h)
	}
	tab := table.New(table.Config{})
	var onPort int
	err = r.Rebuild(context.Background(), tab, nil, nil, func(ev *event.Event) error {
		if ev.Kind == event.KindBind && ev.Ret < 0 {
			socks, _ := tab.Sockets(table.Query{Ports: []uint16{8080}}, ev.Time)
			onPort = len(socks)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := NewReader(bytes.NewReader(withSnapshot(t, Options{})), "mem")
	ptab := table.New(table.Config{})
	var plainOnPort int
	plain.Rebuild(context.Background(), ptab, nil, nil, func(ev *event.Event) error {
		if ev.Kind == event.KindBind && ev.Ret < 0 {
			socks, _ := ptab.Sockets(table.Query{Ports: []uint16{8080}}, ev.Time)
			plainOnPort = len(socks)
		}
		return nil
	})
	if onPort == 0 || onPort != plainOnPort {
		t.Errorf("at the refused bind: %d sockets on the port redacted, %d plain", onPort, plainOnPort)
	}
	if n := len(sample.Events()); r.Events() != int64(n) {
		t.Errorf("%d events of %d", r.Events(), n)
	}
}
