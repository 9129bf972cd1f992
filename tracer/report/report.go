// Package report turns a capture into the page that goes into a
// post-incident review: what the capture covers, what happened on which
// ports, every refused bind(), connect() and listen() with what held the port
// at that moment and the advisor's diagnosis, the processes involved, the
// kernel's own counters, and what was lost. One Report is built per capture
// (Build) and written as text, Markdown, JSON or a self-contained HTML page
// with a timeline per port.
//
// The table behind every statement is rebuilt as the capture goes, from its
// starting snapshot and its events (capture.Reader.Rebuild): what a failure
// says held the port is what the table had at the failure's moment.
package report

import (
	"fmt"
	"time"

	"github.com/twtrace/twtrace/tracer/advice"
	"github.com/twtrace/twtrace/tracer/capture"
	"github.com/twtrace/twtrace/tracer/event"
)

// Options select what a report covers.
type Options struct {
	// Filter selects events (and the snapshot's sockets) as replay's
	// filters do: --port, --pid, ...
	Filter event.Filter
	// From and To bound the span reported; zero: the capture's. Events
	// outside still rebuild the table, so that what held a port is right.
	From, To time.Time
	// Location is the time zone of the report's times; nil: UTC.
	Location *time.Location
}

// Report is what a capture tells. Its JSON is `twtrace report --format json`.
type Report struct {
	File     string              `json:"file"`
	Host     string              `json:"host"`
	Kernel   string              `json:"kernel"`
	Version  int                 `json:"version"`
	Redacted bool                `json:"redacted"`
	Filters  map[string][]string `json:"filters"`  // the recording's filters
	Selected []string            `json:"selected"` // the report's own selection, as flags

	Started time.Time `json:"started"` // the recording session's start
	From    time.Time `json:"from"`    // the first event reported
	To      time.Time `json:"to"`      // the last one
	Ended   string    `json:"ended"`   // the end record's reason, or "cut"
	Cut     string    `json:"cut,omitempty"`

	Snapshot int      `json:"snapshot_sockets"` // sockets in the starting snapshot
	Events   int64    `json:"events"`           // events reported
	Lost     uint64   `json:"lost"`             // events the kernel could not deliver, in the span
	Kinds    []Count  `json:"kinds"`
	Ports    []Port   `json:"ports"`   // most TIME_WAIT first
	Remotes  []Remote `json:"remotes"` // destinations of connect() by TIME_WAIT

	Failures     []Group   `json:"failures"`      // refused syscalls, grouped
	FailureCount int       `json:"failure_count"` // all of them
	Processes    []Process `json:"processes"`

	Counters *Counters        `json:"counters,omitempty"`
	Findings []advice.Finding `json:"findings"`

	Timelines []Timeline    `json:"timelines"`
	Period    time.Duration `json:"sample_period_ns"` // how often the table was sampled

	// Facts are what the advisor reasoned from, for `twtrace advise FILE`.
	Facts *advice.Facts `json:"-"`

	loc *time.Location
}

// Count is how many events of a kind (and detail) were seen.
type Count struct {
	Kind   string `json:"kind"`   // state, bind, connect, listen, timewait, lost
	Detail string `json:"detail"` // bind: "ok" or "refused"; timewait: enter, expire...; state: the new state
	N      int64  `json:"n"`
}

// Port is one local port's TIME_WAIT story; Port 0 with Clients is the
// sockets connect() made in a namespace (their ports are ephemeral).
type Port struct {
	NetNS   uint32    `json:"netns"`
	Port    uint16    `json:"port"`
	Clients bool      `json:"clients,omitempty"`
	Peak    int       `json:"peak"`    // the most TIME_WAIT sockets at once
	PeakAt  time.Time `json:"peak_at"` // when
	AtEnd   int       `json:"at_end"`
	Enters  uint64    `json:"enters"` // TIME_WAIT enters the stream showed
	Refused uint64    `json:"refused"`
	LeftBy  []Owner   `json:"left_by"` // the processes whose sockets left them, at the peak
	Owners  []Owner   `json:"owners"`  // of its open sockets, last seen
}

// Owner is a process that owns sockets.
type Owner struct {
	PID  uint32 `json:"pid"`
	Comm string `json:"comm"`
}

func (o Owner) String() string { return fmt.Sprintf("%d %s", o.PID, o.Comm) }

// Remote is a destination of connect() and the local ports its TIME_WAITs
// hold at their peak: the port-exhaustion signal.
type Remote struct {
	NetNS  uint32    `json:"netns"`
	Remote string    `json:"remote"`
	Peak   int       `json:"peak"`
	PeakAt time.Time `json:"peak_at"`
}

// Failure is one refused syscall and its diagnosis at its moment.
type Failure struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"` // bind, connect, listen
	Errno   string    `json:"errno"`
	Target  string    `json:"target"` // the address asked for, or connect()'s destination
	Port    uint16    `json:"port"`
	NetNS   uint32    `json:"netns"`
	PID     uint32    `json:"pid"`
	Comm    string    `json:"comm"`
	Line    string    `json:"line"` // the event as trace prints it
	Held    []Holder  `json:"held_by"`
	Sockets []Sockets `json:"sockets"` // on the port at that moment, by state
	Verdict string    `json:"verdict,omitempty"`
	Code    string    `json:"code,omitempty"`
	Cause   string    `json:"cause"`
	Summary string    `json:"summary"`
	Fixes   []string  `json:"fixes"`
	Not     []string  `json:"not_fixes,omitempty"`
}

// Holder is a process that held the port, and the states of its sockets.
type Holder struct {
	PID    uint32   `json:"pid"`
	Comm   string   `json:"comm"`
	States []string `json:"states"`
}

// Sockets is how many sockets of a port were in one state.
type Sockets struct {
	State string `json:"state"`
	N     int    `json:"n"`
	Reuse string `json:"reuse"` // their options: "none", "SO_REUSEADDR", ..., "unknown", "mixed"
}

// Group is the failures of one kind, target, errno and cause: the first in
// full, the others by time.
type Group struct {
	Failure
	Count int         `json:"count"`
	Last  time.Time   `json:"last"`
	PIDs  []uint32    `json:"pids"`
	Times []time.Time `json:"times"` // the first maxTimes
}

// Process is a process involved: what it did, or held.
type Process struct {
	PID   uint32   `json:"pid"`
	Comm  string   `json:"comm"`
	Roles []string `json:"roles"`
}

// Counters are the kernel's TIME_WAIT counters over the span: the header's
// and the end record's readings, and what changed.
type Counters struct {
	Start, End capture.Counters
	TW         int64 `json:"tw"`
	TWKilled   int64 `json:"tw_killed"`
	TWRecycled int64 `json:"tw_recycled"`
	Overflow   int64 `json:"tcp_timewait_overflow"`
}

// Timeline is one port's sockets by state over time, and its failures.
type Timeline struct {
	NetNS    uint32    `json:"netns"`
	Port     uint16    `json:"port"`
	Clients  bool      `json:"clients,omitempty"`
	Samples  []Sample  `json:"samples"`
	Failures []Mark    `json:"failures"`
	Dropped  int       `json:"failures_not_marked,omitempty"`
	From     time.Time `json:"-"`
	To       time.Time `json:"-"`
}

// Sample is a port's sockets at one moment.
type Sample struct {
	At          time.Time `json:"at"`
	Listen      int       `json:"listen"`
	Established int       `json:"established"`
	TimeWait    int       `json:"time_wait"`
	CloseWait   int       `json:"close_wait"`
	Other       int       `json:"other"`
}

// Total is the sample's sockets.
func (s *Sample) Total() int { return s.Listen + s.Established + s.TimeWait + s.CloseWait + s.Other }

// Mark is a failure on a timeline.
type Mark struct {
	At    time.Time `json:"at"`
	Title string    `json:"title"` // what it was and its cause
}

// Lossy reports whether the kernel lost events in the span: every count is
// then a lower bound.
func (r *Report) Lossy() bool { return r.Lost > 0 }

// clock formats a time of the report.
func (r *Report) clock(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.In(r.loc).Format("15:04:05.000")
}

// stamp formats a time with its date and zone.
func (r *Report) stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.In(r.loc).Format("2006-01-02 15:04:05.000 MST")
}
