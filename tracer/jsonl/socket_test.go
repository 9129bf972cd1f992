package jsonl

import (
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/twtrace/twtrace/tracer/event"

	"github.com/twtrace/twtrace/tracer/table"
)

// AppendSocket writes the reuse options as booleans, or null when the
// iterator could not read them: never a guess.
func TestAppendSocketReuse(t *testing.T) {
	now := time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)
	for _, c := range []struct {
		reuse      event.Reuse
		addr, port *bool
	}{
		{0, nil, nil},
		{event.ReuseKnown, ptr(false), ptr(false)},
		{event.ReuseKnown | event.ReuseAddr, ptr(true), ptr(false)},
		{event.ReuseKnown | event.ReusePort, ptr(false), ptr(true)},
		{event.ReuseKnown | event.ReuseAddr | event.ReusePort, ptr(true), ptr(true)},
	} {
		s := table.Socket{
			Cookie: 0x1a, Family: event.FamilyIPv4, State: event.StateTimeWait,
			Src: netip.MustParseAddrPort("127.0.0.1:8080"), Dst: netip.MustParseAddrPort("127.0.0.1:40000"),
			Expires: now.Add(time.Second), Source: "sock_diag", Reuse: c.reuse,
		}
		line := AppendSocket(nil, &s, now)
		var got struct {
			ReuseAddr   *bool  `json:"reuseaddr"`
			ReusePort   *bool  `json:"reuseport"`
			RemainingMS int64  `json:"remaining_ms"`
			Source      string `json:"source"`
		}
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if !eqBool(got.ReuseAddr, c.addr) || !eqBool(got.ReusePort, c.port) || got.RemainingMS != 1000 || got.Source != "sock_diag" {
			t.Errorf("%v: %s", c.reuse, line)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func eqBool(a, b *bool) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
