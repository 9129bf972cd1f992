// Package capture writes and reads twtrace capture files: the event stream
// of a live session, saved by `twtrace record` and played back by
// `twtrace replay`, so that every sink consumes live and replayed streams alike.
//
// A capture is JSON Lines (docs/jsonl.md): a header record first, then one
// socket record per socket of the starting snapshot, then one event per
// line exactly as `trace --json` writes them, and, when its recorder closed
// it, an end record with the totals. A capture without its end record was
// cut off (the recorder was killed, or the machine stopped): a reader plays
// every whole event and says where it was cut (CutError). A file is
// zstd-compressed when its name ends in .zst; readers detect compression by
// the magic bytes, not the name. A compressed capture is a sequence of
// independent zstd frames: the writer ends a frame at least every
// DefaultFlushBytes of JSON and every DefaultFlushEvery, so a file cut short
// by a crash still decodes up to its last complete frame. After a write error
// (a full disk) the writer cuts the file back to its last complete line or
// frame: what it holds stays a valid capture.
package capture

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/tracer/kstat"
)

// Version is the capture format version this package writes. Version 2
// added the socket and end records: a version 1 capture has neither, and
// its end is wherever the file ends. Fields may be added to a version; none
// is renamed or removed without a new one.
const Version = 2

// oldestVersion is the oldest version this package reads.
const oldestVersion = 1

// MaxLine bounds the length of one record. The longest event is under 1 KiB;
// the bound keeps a damaged or hostile file from exhausting memory.
const MaxLine = 1 << 20

// Header is the first record of a capture: what was traced, where and how.
type Header struct {
	Time    time.Time           // when the header was written (its ts)
	Version int                 // the format version, Version when written by this package
	Host    string              // host name
	Kernel  string              // kernel release, as uname -r prints it
	Started time.Time           // when the session started
	Sysctls map[string]string   // the host namespace's sysctls, by dotted name
	Filters map[string][]string // the filter flags as given, by long flag name
	NetNS   uint32              // the recording host's own network namespace (inode); 0 unknown

	// Degraded lists, one sentence each ("continuing without bind/connect/
	// listen events: ..."), what the recording session could not trace, so
	// that a replay knows what is absent rather than never happened. JSON
	// "degraded", a list of strings, left out when empty; captures written
	// before it existed read as empty.
	Degraded []string
	// Counters are the host namespace's TIME_WAIT counters when the
	// capture began; nil when unknown (and in captures before version 2).
	Counters *Counters
	// Redacted: addresses and the host name are keyed hashes (--redact).
	Redacted bool
}

// Counters are the kernel's TIME_WAIT counters of a namespace at one moment
// (kstat.Counters): the header has them at the start, the end record at the
// end, so that a report gives what changed over the span.
type Counters struct {
	TW                  uint64 `json:"tw"`                    // TcpExt TW: TIME_WAIT entries (cumulative)
	TWKilled            uint64 `json:"tw_killed"`             // TcpExt TWKilled (cumulative)
	TWRecycled          uint64 `json:"tw_recycled"`           // TcpExt TWRecycled (cumulative)
	TCPTimeWaitOverflow uint64 `json:"tcp_timewait_overflow"` // TcpExt TCPTimeWaitOverflow (cumulative)
	TimeWait            int    `json:"sockstat_tw"`           // sockstat TCP tw: timewait sockets then
	Orphan              int    `json:"sockstat_orphan"`       // sockstat TCP orphan
	InUse               int    `json:"sockstat_inuse"`        // sockstat TCP inuse
}

// CountersOf converts a reading of kstat.
func CountersOf(c kstat.Counters) *Counters {
	return &Counters{TW: c.TW, TWKilled: c.TWKilled, TWRecycled: c.TWRecycled,
		TCPTimeWaitOverflow: c.TCPTimeWaitOverflow, TimeWait: c.TimeWait, Orphan: c.Orphan, InUse: c.InUse}
}

// ReadCounters reads the calling thread's namespace's counters under
// procRoot ("" means /proc); nil when they cannot be read.
func ReadCounters(procRoot string) *Counters {
	if procRoot == "" {
		procRoot = "/proc"
	}
	r, err := kstat.NewReader(procRoot)
	if err != nil {
		return nil
	}
	c, err := r.Counters()
	if err != nil {
		return nil
	}
	return CountersOf(c)
}

// End is the last record of a capture its recorder closed: the totals of
// the file, and how the recording ended.
type End struct {
	Time     time.Time
	Events   int64     // events in the file
	Lost     uint64    // events the kernel could not deliver, the sum of the lost records
	Bytes    int64     // size of the file before the end record
	Reason   string    // EndDuration, EndSignal, ...
	Counters *Counters // the host namespace's counters at the end; nil when unknown
}

// How a recording ended, the end record's reason.
const (
	EndDuration   = "duration"    // --duration ran out
	EndCount      = "count"       // --count events were written
	EndSignal     = "signal"      // SIGINT, SIGTERM or SIGHUP
	EndDiskFull   = "disk_full"   // the file system is full (ENOSPC, EDQUOT)
	EndWriteError = "write_error" // another write error
	EndRotated    = "rotated"     // the file reached its size: the recording goes on in the next one
	EndError      = "error"       // the session failed
	EndClosed     = "closed"      // the program closed it for another reason
)

// endRecord is the JSON form of an End.
type endRecord struct {
	Kind     string    `json:"kind"`
	TS       string    `json:"ts"`
	Events   *int64    `json:"events"`
	Lost     *uint64   `json:"lost"`
	Bytes    *int64    `json:"bytes"`
	Reason   *string   `json:"reason"`
	Counters *Counters `json:"counters,omitempty"`
}

// headerRecord is the JSON form of a Header.
type headerRecord struct {
	Kind    string              `json:"kind"`
	TS      string              `json:"ts"`
	Version int                 `json:"version"`
	Host    string              `json:"host"`
	Kernel  string              `json:"kernel"`
	Started string              `json:"started"`
	Sysctls map[string]string   `json:"sysctls"`
	Filters map[string][]string `json:"filters"`
	NetNS   uint32              `json:"netns,omitempty"`

	Degraded []string  `json:"degraded,omitempty"`
	Counters *Counters `json:"counters,omitempty"`
	Redacted bool      `json:"redacted,omitempty"`
}

// HostHeader describes this machine for a capture started now: host name,
// kernel release, and the sysctls of the calling thread's network namespace
// (the host's, unless the caller is locked into another) read under procRoot
// ("" means /proc). The header is usable even when it returns an error: the
// error says what could not be read, and that part is left empty.
func HostHeader(procRoot string, filters map[string][]string) (Header, error) {
	if procRoot == "" {
		procRoot = "/proc"
	}
	now := time.Now()
	h := Header{Time: now, Version: Version, Started: now, Sysctls: map[string]string{}, Filters: filters}
	if h.Filters == nil {
		h.Filters = map[string][]string{}
	}
	var errs []error
	host, err := os.Hostname()
	if err != nil {
		errs = append(errs, fmt.Errorf("host name: %w", err))
	}
	h.Host = host
	var st unix.Stat_t
	if unix.Stat("/proc/thread-self/ns/net", &st) == nil {
		h.NetNS = uint32(st.Ino)
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		errs = append(errs, fmt.Errorf("uname: %w", err))
	} else {
		h.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	r, err := kstat.NewReader(procRoot)
	if err == nil {
		var s kstat.Sysctls
		if s, err = r.Sysctls(); err == nil {
			h.Sysctls = s.Values()
		}
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("sysctls: %w", err))
	}
	h.Counters = ReadCounters(procRoot)
	return h, errors.Join(errs...)
}

// compressed reports whether a capture named name is written compressed.
func compressed(name string) bool { return strings.HasSuffix(name, ".zst") }

// WriteError is a failed write to a capture. The file keeps the Saved events
// written before the failure and is a readable capture up to them.
type WriteError struct {
	Name  string // the file
	Saved int64  // events the file holds
	Err   error
}

func (e *WriteError) Error() string {
	cause := e.Err
	if pe, ok := cause.(*fs.PathError); ok && pe.Path == e.Name {
		cause = pe.Err // the name is said once
	}
	return fmt.Sprintf("write capture %s: %v; the file keeps the first %d events and is readable up to them",
		e.Name, cause, e.Saved)
}

func (e *WriteError) Unwrap() error { return e.Err }

// FormatError is a capture that cannot be read past a point: not a capture,
// cut short, corrupt. Everything before Line was delivered.
type FormatError struct {
	Name string // the file
	Line int    // 1-based line of the decompressed stream; 0 when none applies
	Err  error
}

func (e *FormatError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("capture %s: %v", e.Name, e.Err)
	}
	return fmt.Sprintf("capture %s: line %d: %v", e.Name, e.Line, e.Err)
}

func (e *FormatError) Unwrap() error { return e.Err }

// CutError is the end of a capture that its recorder did not close: the
// file ends in the middle of a line or of a compressed frame, or without
// its end record (a recorder killed, a machine that stopped). Every whole
// event before the cut was delivered: it is a warning, not bad input.
type CutError struct {
	Name   string    // the file
	Line   int       // the line where the capture is cut: the first one missing or incomplete
	Events int64     // the whole events delivered
	Last   time.Time // the last one's time; zero when none
	Where  string    // "in the middle of a line", "in the middle of a compressed frame", "" at a boundary
}

func (e *CutError) Error() string {
	where := "without its end record"
	if e.Where != "" {
		where = e.Where
	}
	last := ""
	if !e.Last.IsZero() {
		last = ", the last at " + e.Last.UTC().Format("2006-01-02 15:04:05.000 UTC")
	}
	return fmt.Sprintf("capture %s is cut at line %d, %s: its recorder did not close it (killed, or the machine stopped); "+
		"all %d whole events before the cut were read%s", e.Name, e.Line, where, e.Events, last)
}
