package session

import (
	"github.com/twtrace/twtrace/tracer"
	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/table"
)

// ReadReuse adds to a snapshot's table the address-reuse options
// (SO_REUSEADDR, SO_REUSEPORT) of its sockets, which sock_diag does not
// report, through a BPF iterator over the namespace netnsFD refers to (the
// caller's with -1). It needs the privileges tracing needs; without them the
// options stay unknown and the error says why.
func ReadReuse(tab *table.Table, netnsFD int) error {
	r, err := tracer.OpenReuseReader()
	if err != nil {
		return err
	}
	defer r.Close()
	return readReuse(r, tab, netnsFD)
}

// readReuse merges one namespace's options into the table, a chunk at a time.
func readReuse(r *tracer.ReuseReader, tab *table.Table, netnsFD int) error {
	buf := make([]table.SocketReuse, 0, chunkLen)
	err := r.Read(netnsFD, func(cookie uint64, re event.Reuse) {
		buf = append(buf, table.SocketReuse{Cookie: cookie, Reuse: re})
		if len(buf) == cap(buf) {
			tab.SetReuse(buf)
			buf = buf[:0]
		}
	})
	tab.SetReuse(buf)
	return err
}
