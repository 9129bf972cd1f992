package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/twtrace/twtrace/tracer"
	"github.com/twtrace/twtrace/tracer/event"
)

// filterFlags are the filters every observing subcommand shares. Each
// value is read by event.Filter.Add as the flags are parsed: the same words
// as the live view's "/" line, with the same messages when they are wrong.
type filterFlags struct {
	flt    event.Filter
	errors bool
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
	f.registerSockets(fs, "", "only sockets this process `PID` owns",
		"only sockets in this TCP `state` (time-wait, estab, listening, TIME_WAIT...; repeatable)")
}

func (f *filterFlags) registerEvents(fs *pflag.FlagSet, kernel string) {
	f.registerSockets(fs, kernel, "only this process `PID`, as owner or running task"+kernel,
		"only transitions into or out of this TCP `state` (time-wait, estab, listening, TIME_WAIT...; repeatable)")
	f.term(fs, "sport", "", "only this local `port` (repeatable)", true)
	f.term(fs, "dport", "", "only this remote `port`, or a connect()'s destination (repeatable)", true)
	f.term(fs, "uid", "", "only this `uid`: the socket owner's for transitions, the task's for bind/connect/listen (repeatable)"+kernel, true)
	f.term(fs, "comm", "", "only this task `name`, as owner or running task", false)
	f.term(fs, "netns", "", "only this network namespace `inode` (see: ls -L -i /proc/PID/ns/net)"+kernel, false)
	fs.BoolVarP(&f.errors, "errors", "E", false,
		"only refused bind(), connect() and listen() calls (with --state: those and the state's transitions)")
}

func (f *filterFlags) registerSockets(fs *pflag.FlagSet, kernel, pid, state string) {
	f.term(fs, "port", "", "only sockets with this local or remote `port` (repeatable)"+kernel, true)
	f.term(fs, "pid", "", pid, false)
	f.term(fs, "state", "", state, true)
	fs.BoolVarP(&f.ipv4, "ipv4", "4", false, "only IPv4"+kernel)
	fs.BoolVarP(&f.ipv6, "ipv6", "6", false, "only IPv6"+kernel)
}

// term registers a flag whose values are filter terms of the key its name is.
func (f *filterFlags) term(fs *pflag.FlagSet, name, short, usage string, list bool) {
	fs.VarP(&termFlag{flt: &f.flt, key: name, list: list}, name, short, usage)
}

// filter checks what no single flag can; its errors are usage errors.
func (f *filterFlags) filter() (event.Filter, error) {
	flt := f.flt
	if len(flt.Ports) > tracer.MaxPorts {
		return flt, usagef("--port: at most %d ports, got %d", tracer.MaxPorts, len(flt.Ports))
	}
	if len(flt.UIDs) > tracer.MaxUIDs {
		return flt, usagef("--uid: at most %d uids, got %d", tracer.MaxUIDs, len(flt.UIDs))
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
	flt.Failed = f.errors
	return flt, nil
}

// termFlag is a filter flag: each value is added to the filter as it is
// parsed, so that a wrong one is refused with the parser's sentence.
type termFlag struct {
	flt  *event.Filter
	key  string
	list bool // repeatable, and comma-separated values
	vals []string
}

func (t *termFlag) Set(s string) error {
	vals := []string{s}
	if t.list {
		vals = strings.Split(s, ",")
	}
	for _, v := range vals {
		if t.list {
			v = strings.TrimSpace(v)
		}
		if err := t.flt.Add(t.key, v); err != nil {
			return err
		}
		t.vals = append(t.vals, v)
	}
	return nil
}

func (t *termFlag) String() string { return strings.Join(t.vals, ",") }

func (t *termFlag) Type() string {
	if t.list {
		return "strings"
	}
	return "string"
}

// GetSlice, Append and Replace make it a pflag.SliceValue: the capture's
// header records every value given.
func (t *termFlag) GetSlice() []string { return t.vals }

func (t *termFlag) Append(s string) error { return t.Set(s) }

func (t *termFlag) Replace(ss []string) error {
	t.vals = nil
	for _, s := range ss {
		if err := t.Set(s); err != nil {
			return err
		}
	}
	return nil
}

// flagSet is a boolean flag and whether it was given.
type flagSet struct {
	name string
	on   bool
}

// exclusive is a usage error when more than one of the flags is given:
// output formats, one of which the command writes.
func exclusive(flags ...flagSet) error {
	var on []string
	for _, f := range flags {
		if f.on {
			on = append(on, f.name)
		}
	}
	if len(on) > 1 {
		return usagef("%s exclude each other", strings.Join(on, " and "))
	}
	return nil
}

// wantKey is the flag annotation that says what a flag accepts, for the
// message when its value cannot be parsed.
const wantKey = "twtrace-want"

// accepts says, for the error message, what a flag accepts.
func accepts(fs *pflag.FlagSet, name, want string) {
	_ = fs.SetAnnotation(name, wantKey, []string{want})
}

// flagError turns pflag's errors into one sentence: a value that cannot be
// parsed is named with what the flag accepts, never with strconv's or
// time's words.
func flagError(err error) error {
	var ive *pflag.InvalidValueError
	if !errors.As(err, &ive) {
		return usageError{err}
	}
	fl := ive.GetFlag()
	var te *event.TermError
	if errors.As(err, &te) {
		return usageError{fmt.Errorf("--%s %w", fl.Name, te)}
	}
	want := "a value of type " + fl.Value.Type()
	switch fl.Value.Type() {
	case "duration":
		want = "a duration with a unit, such as 30s or 5m"
	case "int", "uint32":
		want = "a whole number"
	case "float64":
		want = "a number such as 2 or 0.5"
	case "bool":
		want = "true or false"
	}
	if w := fl.Annotations[wantKey]; len(w) > 0 {
		want = w[0]
	}
	return usageError{fmt.Errorf("--%s %s: want %s", fl.Name, strconv.Quote(ive.GetValue()), want)}
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
