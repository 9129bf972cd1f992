package metrics

import "github.com/twtrace/twtrace/tracer/table"

// portRanges returns, for one scrape, each namespace's usable ephemeral
// ports: from Config.PortRange (the session's last reading in each
// namespace), or without it from Kernel for every namespace. A namespace
// whose range is unknown gets no ratio; the host's unknown is a collect
// error (port_range).
func (x *Exporter) portRanges(remotes []table.RemoteSummary) func(uint32) (int, bool) {
	type entry struct {
		n  int
		ok bool
	}
	got := map[uint32]entry{}
	read := x.cfg.PortRange
	if read == nil {
		var host entry
		if x.cfg.Kernel != nil {
			if s, err := x.cfg.Kernel.Sysctls(); err == nil {
				host.n, host.ok = s.EphemeralPorts()
			}
		}
		read = func(uint32) (int, bool) { return host.n, host.ok }
	}
	need := func(ns uint32) {
		if _, ok := got[ns]; !ok {
			n, ok := read(ns)
			got[ns] = entry{n, ok}
		}
	}
	need(x.cfg.HostNetNS)
	if !got[x.cfg.HostNetNS].ok && (x.cfg.Kernel != nil || x.cfg.PortRange != nil) {
		x.countError("port_range")
	}
	for i := range remotes {
		need(remotes[i].NetNS)
	}
	return func(ns uint32) (int, bool) {
		e := got[ns]
		return e.n, e.ok
	}
}
