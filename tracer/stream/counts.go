package stream

import (
	"cmp"
	"io"
	"slices"
	"strconv"

	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/table"
)

// countRow is one row of WriteCounts: a local port, or the clients' row.
type countRow struct {
	netns   uint32
	port    uint16
	clients bool // the sockets connect() made, whatever their ports
	guessed int  // of them, taken for a client's by their port alone
	states  [16]int
	total   int
}

// WriteCounts writes a summary of sockets by local port and state, as
// `ss -s` does for the whole host: one row per local port of a server's
// sockets, busiest first, then one row per namespace for the sockets
// connect() made ("ephem": their local ports are the kernel's picks), then
// the totals. States are the kernel's (Socket.KernelState); a state no
// socket is in has no column. An "ephem?" row holds sockets taken for a
// client's by their port alone (table.SideClientGuess).
func WriteCounts(w io.Writer, socks []table.Socket) error {
	type key struct {
		netns   uint32
		port    uint16
		clients bool
	}
	rows := map[key]*countRow{}
	var all countRow
	netnss := map[uint32]bool{}
	for i := range socks {
		s := &socks[i]
		k := key{netns: s.NetNS, port: s.Src.Port()}
		if s.Side.Client() {
			k = key{netns: s.NetNS, clients: true}
		}
		r := rows[k]
		if r == nil {
			r = &countRow{netns: k.netns, port: k.port, clients: k.clients}
			rows[k] = r
		}
		st := s.KernelState()
		if int(st) >= len(r.states) {
			continue
		}
		r.states[st]++
		r.total++
		all.states[st]++
		all.total++
		if s.Side == table.SideClientGuess {
			r.guessed++
		}
		netnss[s.NetNS] = true
	}
	sorted := make([]*countRow, 0, len(rows))
	for _, r := range rows {
		sorted = append(sorted, r)
	}
	slices.SortFunc(sorted, func(a, b *countRow) int {
		return cmp.Or(cmp.Compare(btoi(a.clients), btoi(b.clients)), cmp.Compare(b.total, a.total),
			cmp.Compare(a.netns, b.netns), cmp.Compare(a.port, b.port))
	})
	// Listeners first, then the kernel's order, as Table.Sockets lists them.
	var cols []event.State
	for _, st := range append([]event.State{event.StateListen}, statesInOrder()...) {
		if all.states[st] > 0 {
			cols = append(cols, st)
		}
	}
	showNetNS := len(netnss) > 1
	b := pad(nil, "PORT", 7)
	if showNetNS {
		b = pad(b, "NETNS", 11)
	}
	for _, st := range cols {
		b = pad(b, st.String(), len(st.String()))
	}
	b = append(b, "TOTAL\n"...)
	row := func(b []byte, name string, netns string, r *countRow) []byte {
		b = pad(b, name, 7)
		if showNetNS {
			b = pad(b, netns, 11)
		}
		for _, st := range cols {
			b = pad(b, strconv.Itoa(r.states[st]), len(st.String()))
		}
		b = strconv.AppendInt(b, int64(r.total), 10)
		return append(b, '\n')
	}
	guessed := false
	for _, r := range sorted {
		name := strconv.Itoa(int(r.port))
		if r.clients {
			name = "ephem"
			if r.guessed > 0 {
				name, guessed = "ephem?", true
			}
		}
		b = row(b, name, strconv.FormatUint(uint64(r.netns), 10), r)
	}
	b = row(b, "total", "", &all)
	if guessed {
		b = append(b, "ephem?: some of these sockets are taken for a client's by their local port alone, in ip_local_port_range\n"...)
	}
	_, err := w.Write(b)
	return err
}

// statesInOrder lists the TCP states but LISTEN, in the kernel's order.
func statesInOrder() []event.State {
	var out []event.State
	for st := event.StateEstablished; st <= event.StateNewSynRecv; st++ {
		if st != event.StateListen {
			out = append(out, st)
		}
	}
	return out
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
