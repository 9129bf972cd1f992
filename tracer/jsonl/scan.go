package jsonl

import (
	"encoding/json"
	"strconv"
	"strings"
)

// scanFlat is Decode's fast path. It fills r from a line as twtrace writes
// them: one flat object whose values are strings (printable ASCII, no
// escapes), integers, numbers (for old_ms), true, false and null, with keys
// spelled as the schema spells them. It returns false for anything else —
// an escape, a non-ASCII byte, a nested value, a type that does not fit the
// field, a key that differs from a known one only in case, a syntax error —
// and Decode then hands the line to encoding/json, which decides it. Where
// scanFlat returns true, r is exactly what json.Unmarshal would have made of
// the line (FuzzScanFlat checks that), about ten times faster.
func scanFlat(line []byte, r *record, st *store) bool {
	// One copy of the line; every string value is a piece of it.
	s := scanner{b: string(line), st: st}
	s.ws()
	if !s.byte('{') {
		return false
	}
	s.ws()
	if s.byte('}') {
		s.ws()
		return s.i == len(s.b)
	}
	for {
		key, ok := s.str()
		if !ok {
			return false
		}
		s.ws()
		if !s.byte(':') {
			return false
		}
		s.ws()
		if !s.field(r, key) {
			return false
		}
		s.ws()
		if s.byte(',') {
			s.ws()
			continue
		}
		if !s.byte('}') {
			return false
		}
		s.ws()
		return s.i == len(s.b)
	}
}

type scanner struct {
	b  string
	i  int
	st *store
}

// store holds the values record's pointers point to: one allocation for
// all of them instead of one each.
type store struct {
	sock, family, saddr, daddr, old, new, comm, ownerComm, addr, errno, event, source string

	sport, dport, port   uint16
	pid, ownerPID, netns uint32
	uid, ownerUID        uint32
	fd, ret              int32
	remainingMS          int64
	count                uint64
	reuseAddr, reusePort bool
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) byte(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// str reads a string of printable ASCII without escapes, and returns its
// contents.
func (s *scanner) str() (string, bool) {
	if !s.byte('"') {
		return "", false
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], true
		case c < 0x20 || c == '\\' || c >= 0x80:
			return "", false
		}
		s.i++
	}
	return "", false
}

// number reads a number as JSON's grammar has it, and says whether it was
// an integer (no fraction, no exponent).
func (s *scanner) number() (lit string, integer, ok bool) {
	start := s.i
	s.byte('-')
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case c >= '1' && c <= '9':
		s.digits()
	default:
		return "", false, false
	}
	integer = true
	if s.byte('.') {
		integer = false
		if s.digits() == 0 {
			return "", false, false
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		integer = false
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if s.digits() == 0 {
			return "", false, false
		}
	}
	return s.b[start:s.i], integer, true
}

func (s *scanner) digits() int {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i - start
}

func (s *scanner) word(w string) bool {
	if len(s.b)-s.i >= len(w) && s.b[s.i:s.i+len(w)] == w {
		s.i += len(w)
		return true
	}
	return false
}

// value kinds
const (
	vString = iota + 1
	vNumber
	vTrue
	vFalse
	vNull
)

// value reads a scalar value. For a string lit is its contents; for a
// number, its literal. Both are pieces of the line's one copy.
func (s *scanner) value() (kind int, lit string, integer bool) {
	switch s.peek() {
	case '"':
		if b, ok := s.str(); ok {
			return vString, b, false
		}
	case 't':
		if s.word("true") {
			return vTrue, "", false
		}
	case 'f':
		if s.word("false") {
			return vFalse, "", false
		}
	case 'n':
		if s.word("null") {
			return vNull, "", false
		}
	default:
		if b, integer, ok := s.number(); ok {
			return vNumber, b, integer
		}
	}
	return 0, "", false
}

// field reads the value of key into r.
func (s *scanner) field(r *record, key string) bool {
	kind, lit, integer := s.value()
	if kind == 0 {
		return false
	}
	st := s.st
	switch key {
	case "kind":
		return setPlainString(&r.Kind, kind, lit)
	case "ts":
		return setPlainString(&r.TS, kind, lit)
	case "sock":
		return setString(&r.Sock, &st.sock, kind, lit)
	case "family":
		return setString(&r.Family, &st.family, kind, lit)
	case "saddr":
		return setString(&r.Saddr, &st.saddr, kind, lit)
	case "sport":
		return setInt(&r.Sport, &st.sport, kind, lit, integer)
	case "daddr":
		return setString(&r.Daddr, &st.daddr, kind, lit)
	case "dport":
		return setInt(&r.Dport, &st.dport, kind, lit, integer)
	case "old":
		return setString(&r.Old, &st.old, kind, lit)
	case "new":
		return setString(&r.New, &st.new, kind, lit)
	case "old_ms":
		switch kind {
		case vNumber:
			r.OldMS = json.RawMessage(lit)
		case vNull:
			r.OldMS = json.RawMessage("null")
		default:
			return false
		}
		return true
	case "pid":
		return setInt(&r.PID, &st.pid, kind, lit, integer)
	case "comm":
		return setString(&r.Comm, &st.comm, kind, lit)
	case "owner_pid":
		return setInt(&r.OwnerPID, &st.ownerPID, kind, lit, integer)
	case "owner_comm":
		return setString(&r.OwnerComm, &st.ownerComm, kind, lit)
	case "uid":
		return setInt(&r.UID, &st.uid, kind, lit, integer)
	case "owner_uid":
		return setInt(&r.OwnerUID, &st.ownerUID, kind, lit, integer)
	case "reset":
		switch kind {
		case vTrue, vFalse:
			r.Reset = kind == vTrue
		case vNull: // leaves a plain bool as it was
		default:
			return false
		}
		return true
	case "netns":
		return setInt(&r.NetNS, &st.netns, kind, lit, integer)
	case "fd":
		return setInt(&r.FD, &st.fd, kind, lit, integer)
	case "addr":
		return setString(&r.Addr, &st.addr, kind, lit)
	case "port":
		return setInt(&r.Port, &st.port, kind, lit, integer)
	case "ret":
		return setInt(&r.Ret, &st.ret, kind, lit, integer)
	case "errno":
		return setString(&r.Errno, &st.errno, kind, lit)
	case "reuseaddr":
		return setBool(&r.ReuseAddr, &st.reuseAddr, kind)
	case "reuseport":
		return setBool(&r.ReusePort, &st.reusePort, kind)
	case "event":
		return setString(&r.Event, &st.event, kind, lit)
	case "remaining_ms":
		return setInt(&r.RemainingMS, &st.remainingMS, kind, lit, integer)
	case "source":
		return setString(&r.Source, &st.source, kind, lit)
	case "count":
		return setInt(&r.Count, &st.count, kind, lit, integer)
	}
	// encoding/json matches keys without regard to case: leave those to it.
	for _, k := range recordKeys {
		if strings.EqualFold(k, key) {
			return false
		}
	}
	return true // a field this version does not know
}

// recordKeys are record's JSON keys.
var recordKeys = []string{"kind", "ts", "sock", "family", "saddr", "sport", "daddr", "dport", "old",
	"new", "old_ms", "pid", "comm", "owner_pid", "owner_comm", "uid", "owner_uid", "reset", "netns", "fd", "addr", "port",
	"ret", "errno", "reuseaddr", "reuseport", "event", "remaining_ms", "source", "count"}

func setPlainString(dst *string, kind int, lit string) bool {
	switch kind {
	case vString:
		*dst = lit
	case vNull: // leaves a plain string as it was
	default:
		return false
	}
	return true
}

func setString(dst **string, slot *string, kind int, lit string) bool {
	switch kind {
	case vString:
		*slot = lit
		*dst = slot
	case vNull:
		*dst = nil
	default:
		return false
	}
	return true
}

func setBool(dst **bool, slot *bool, kind int) bool {
	switch kind {
	case vTrue, vFalse:
		*slot = kind == vTrue
		*dst = slot
	case vNull:
		*dst = nil
	default:
		return false
	}
	return true
}

// setInt reads an integer into an integer field. Like encoding/json it
// takes only literals without fraction or exponent that fit the type; unlike
// it, it returns false where encoding/json would fail.
func setInt[T uint16 | uint32 | uint64 | int32 | int64](dst **T, slot *T, kind int, lit string, integer bool) bool {
	switch {
	case kind == vNull:
		*dst = nil
		return true
	case kind != vNumber || !integer:
		return false
	}
	var v T
	if lit[0] == '-' {
		n, err := strconv.ParseInt(lit, 10, 64)
		v = T(n)
		if err != nil || ^T(0) > 0 || int64(v) != n { // unsigned takes no sign, not even -0
			return false
		}
	} else {
		n, err := strconv.ParseUint(lit, 10, 64)
		v = T(n)
		if err != nil || uint64(v) != n || v < 0 {
			return false
		}
	}
	*slot = v
	*dst = slot
	return true
}
