package capture

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"net/netip"

	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/table"
)

// Redactor replaces what identifies a host and its peers in a capture —
// every address, the host name — with keyed hashes (HMAC-SHA256 under a
// random key made for the capture and never stored), for sharing a capture
// outside the team. The same address always maps to the same token within
// the capture, and distinct addresses to distinct tokens, so that the table
// rebuilt from a redacted capture, and every diagnosis made from it, are the
// same as from the original. Tokens keep the family and stay addresses (the
// capture reads and replays as any other): IPv4 in 240.0.0.0/4 (reserved,
// never routed), IPv6 in 2001:db8::/32 (documentation), an IPv4-mapped
// address as the mapped token. The wildcards 0.0.0.0 and :: are kept: they
// identify nothing, and which sockets overlap depends on them. Ports, task
// names, pids and namespace inodes are kept; captures hold no command lines.
type Redactor struct {
	mac    hash.Hash
	tokens map[netip.Addr]netip.Addr // address → token
	taken  map[netip.Addr]netip.Addr // token → address, to resolve collisions
	sum    []byte
}

// maxTokens bounds the maps: past it, tokens are still keyed hashes of
// their address, only no longer checked for collisions.
const maxTokens = 1 << 20

// NewRedactor makes a redactor with a fresh random key.
func NewRedactor() (*Redactor, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("redaction key: %w", err)
	}
	return newRedactor(key), nil
}

func newRedactor(key []byte) *Redactor {
	return &Redactor{
		mac: hmac.New(sha256.New, key), tokens: make(map[netip.Addr]netip.Addr),
		taken: make(map[netip.Addr]netip.Addr),
	}
}

// Addr returns a's token.
func (r *Redactor) Addr(a netip.Addr) netip.Addr {
	if !a.IsValid() || a.IsUnspecified() {
		return a
	}
	a = a.WithZone("")
	if t, ok := r.tokens[a]; ok {
		return t
	}
	var t netip.Addr
	for i := uint32(0); ; i++ {
		t = r.token(a, i)
		if prev, ok := r.taken[t]; !ok || prev == a || len(r.taken) >= maxTokens {
			break
		}
	}
	if len(r.tokens) < maxTokens {
		r.tokens[a] = t
		r.taken[t] = a
	}
	return t
}

// token is the i-th candidate token of a: i > 0 after collisions.
func (r *Redactor) token(a netip.Addr, i uint32) netip.Addr {
	b := a.As16()
	r.mac.Reset()
	r.mac.Write(b[:])
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], i)
	r.mac.Write(n[:])
	r.sum = r.mac.Sum(r.sum[:0])
	switch {
	case a.Is4(), a.Is4In6():
		v := 0xf0000000 | binary.BigEndian.Uint32(r.sum)&0x0fffffff
		if v == 0xffffffff { // the limited broadcast address is not a host
			v--
		}
		var four [4]byte
		binary.BigEndian.PutUint32(four[:], v)
		t := netip.AddrFrom4(four)
		if a.Is4In6() {
			return netip.AddrFrom16(t.As16())
		}
		return t
	}
	var six [16]byte
	six[0], six[1], six[2], six[3] = 0x20, 0x01, 0x0d, 0xb8
	copy(six[4:], r.sum[:12])
	return netip.AddrFrom16(six)
}

func (r *Redactor) addrPort(ap netip.AddrPort) netip.AddrPort {
	if !ap.Addr().IsValid() {
		return ap
	}
	return netip.AddrPortFrom(r.Addr(ap.Addr()), ap.Port())
}

// Host returns the token of a host name.
func (r *Redactor) Host(name string) string {
	if name == "" {
		return ""
	}
	r.mac.Reset()
	r.mac.Write([]byte("host\x00" + name))
	r.sum = r.mac.Sum(r.sum[:0])
	return "redacted-" + hex.EncodeToString(r.sum[:6])
}

func (r *Redactor) event(ev *event.Event) {
	ev.Src, ev.Dst = r.addrPort(ev.Src), r.addrPort(ev.Dst)
}

func (r *Redactor) socket(s *table.Socket) {
	s.Src, s.Dst = r.addrPort(s.Src), r.addrPort(s.Dst)
}

func (r *Redactor) header(h Header) Header {
	h.Host = r.Host(h.Host)
	h.Redacted = true
	return h
}
