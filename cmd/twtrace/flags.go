package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/twtrace/twtrace/tracer/event"

	"github.com/spf13/pflag"

	"github.com/twtrace/twtrace/tracer"
)

// filterFlags are the filters every observing subcommand shares.
type filterFlags struct {
	ports  []string
	pid    uint32
	uids   []string
	comm   string
	states []string
	netns  uint32
	ipv4   bool
	ipv6   bool
}

// register registers the filters of a trace (trace, record, bare twtrace).
func (f *filterFlags) register(fs *pflag.FlagSet) { f.registerEvents(fs, " (in kernel)") }

// registerReplay registers the filters for a capture: nothing is in kernel.
func (f *filterFlags) registerReplay(fs *pflag.FlagSet) { f.registerEvents(fs, "") }

// registerSnapshot registers the filters of a listing of sockets (sockets):
// they select sockets, not events, and apply in twtrace.
func (f *filterFlags) registerSnapshot(fs *pflag.FlagSet) {
	f.registerSockets(fs, "", "only sockets this process owns",
		"only sockets in this TCP `state` (repeatable)")
}

func (f *filterFlags) registerEvents(fs *pflag.FlagSet, kernel string) {
	f.registerSockets(fs, kernel, "only this process, as owner or running task"+kernel,
		"only transitions into or out of this TCP `state` (repeatable)")
	fs.StringSliceVar(&f.uids, "uid", nil, "only this `uid`: the socket owner's for transitions, the task's for bind/connect/listen (repeatable)"+kernel)
	fs.StringVar(&f.comm, "comm", "", "only this task `name`, as owner or running task")
	fs.Uint32Var(&f.netns, "netns", 0, "only this network namespace `inode` (see: ls -L -i /proc/PID/ns/net)"+kernel)
}

func (f *filterFlags) registerSockets(fs *pflag.FlagSet, kernel, pid, state string) {
	fs.StringSliceVar(&f.ports, "port", nil, "only sockets with this local or remote `port` (repeatable)"+kernel)
	fs.Uint32Var(&f.pid, "pid", 0, pid)
	fs.StringSliceVar(&f.states, "state", nil, state)
	fs.BoolVarP(&f.ipv4, "ipv4", "4", false, "only IPv4"+kernel)
	fs.BoolVarP(&f.ipv6, "ipv6", "6", false, "only IPv6"+kernel)
}

// filter validates the flags; its errors are usage errors.
func (f *filterFlags) filter() (event.Filter, error) {
	var flt event.Filter
	for _, p := range f.ports {
		n, err := strconv.ParseUint(strings.TrimSpace(p), 10, 16)
		if err != nil || n == 0 {
			return flt, usagef("--port %q: want a port number from 1 to 65535", p)
		}
		flt.Ports = append(flt.Ports, uint16(n))
	}
	if len(flt.Ports) > tracer.MaxPorts {
		return flt, usagef("--port: at most %d ports, got %d", tracer.MaxPorts, len(flt.Ports))
	}
	for _, u := range f.uids {
		n, err := strconv.ParseUint(strings.TrimSpace(u), 10, 32)
		if err != nil || n == math.MaxUint32 {
			return flt, usagef("--uid %q: want a user id, a number such as 0 or 1000 (see: id -u NAME)", u)
		}
		flt.UIDs = append(flt.UIDs, uint32(n))
	}
	if len(flt.UIDs) > tracer.MaxUIDs {
		return flt, usagef("--uid: at most %d uids, got %d", tracer.MaxUIDs, len(flt.UIDs))
	}
	for _, s := range f.states {
		st, ok := event.ParseState(strings.TrimSpace(s))
		if !ok {
			return flt, usagef("--state %q: want a TCP state such as LISTEN, ESTABLISHED, TIME_WAIT", s)
		}
		flt.States = append(flt.States, st)
	}
	if f.ipv4 && f.ipv6 {
		return flt, usagef("-4 and -6 exclude each other; give neither for both families")
	}
	if f.ipv4 {
		flt.Family = event.FamilyIPv4
	}
	if f.ipv6 {
		flt.Family = event.FamilyIPv6
	}
	flt.PID = f.pid
	flt.Comm = f.comm
	flt.NetNS = f.netns
	return flt, nil
}

// parseSize reads a byte count with an optional K, M or G suffix (powers of 1024).
func parseSize(s string) (int, error) {
	mult := 1
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	switch {
	case strings.HasSuffix(t, "K"):
		mult, t = 1<<10, t[:len(t)-1]
	case strings.HasSuffix(t, "M"):
		mult, t = 1<<20, t[:len(t)-1]
	case strings.HasSuffix(t, "G"):
		mult, t = 1<<30, t[:len(t)-1]
	}
	n, err := strconv.Atoi(t)
	if err != nil || n <= 0 || n > (1<<31)/mult {
		return 0, fmt.Errorf("size %q: want a number of bytes such as 4M or 262144", s)
	}
	return n * mult, nil
}
