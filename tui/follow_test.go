package tui

import (
	"net/netip"
	"testing"

	"github.com/twtrace/twtrace/tracer/event"
)

// selectedCookie is the cookie of the Sockets view's cursor row, 0: none.
func selectedCookie(m Model) uint64 {
	s, _ := m.Selected()
	return s.Cookie
}

// Follow opens the port's sockets with the named socket selected, at once
// if the table has it, or as soon as a query finds it; the user's cursor
// ends the following.
func TestFollow(t *testing.T) {
	f := newSampleFeed()
	m := headlessWith(t, f, testOptions(), 120, 30)
	m = m.Follow(sampleNetNS, 8080, 0x2a02).Refresh()
	if m.active != viewSockets || m.filter.String() != "port 8080" {
		t.Fatalf("after Follow: view %s, filter %q", viewNames[m.active], m.filter.String())
	}
	if got := selectedCookie(m); got != 0x2a02 {
		t.Errorf("selected %x, want the followed 2a02", got)
	}
	// A socket the table does not have yet: selected once it is there.
	m = m.Follow(sampleNetNS, 8080, 0x2c00).Refresh()
	if got := selectedCookie(m); got == 0x2c00 || got == 0 {
		t.Fatalf("selected %x before the followed socket exists", got)
	}
	ev := event.Event{Kind: event.KindState, Time: testNow, NetNS: sampleNetNS, Family: event.FamilyIPv4,
		Src: netip.MustParseAddrPort("127.0.0.1:8080"), Dst: netip.MustParseAddrPort("127.0.0.1:51300"),
		Cookie: 0x2c00, Old: event.StateSynRecv, New: event.StateEstablished}
	f.tab.ApplyBatch([]event.Event{ev}, nil)
	m = step(m, EventsMsg{ev}).Refresh()
	if got := selectedCookie(m); got != 0x2c00 {
		t.Errorf("selected %x once the followed socket came, want 2c00", got)
	}
	m = m.Follow(sampleNetNS, 8080, 0x2a02)
	m = step(m, keyMsg("down")).Refresh()
	if got := selectedCookie(m); got == 0x2a02 {
		t.Error("the cursor went back to the followed socket after the user moved it")
	}
	m = step(m, keyMsg("esc"))
	if m.active != viewPorts || !m.filter.empty() {
		t.Errorf("esc after Follow: view %s, filter %q; want Ports, no filter", viewNames[m.active], m.filter.String())
	}
}
