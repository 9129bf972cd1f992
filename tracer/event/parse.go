package event

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
)

// The filter vocabulary. The live view's "/" line is read by ParseFilter, the
// CLI's filter flags (--port, --state, ...) by Add, so that a word selects the
// same events wherever it is typed.

// TermError is a filter term that cannot be read. Its message is one
// sentence: the value as typed, what is wrong with it and what is accepted.
type TermError struct {
	Value string // as typed
	Msg   string // follows the quoted value: "is not a port: want ..."
}

func (e *TermError) Error() string { return strconv.Quote(e.Value) + " " + e.Msg }

// What each key accepts, for the messages.
const (
	wantPort  = "is not a port: want a number from 1 to 65535"
	wantPID   = "is not a process id: want a number from 1 to 4294967295"
	wantNetNS = "is not a network namespace inode: want the number ls -Li /proc/PID/ns/net prints"
	wantComm  = "is not a task name: want the name ps -o comm shows (its first 15 bytes are compared)"
	wantState = "is not a TCP state: want one of ss's (established, syn-sent, syn-recv, fin-wait-1, " +
		"fin-wait-2, time-wait, closed, close-wait, last-ack, listening, closing), a kernel name such as TIME_WAIT, or tw, estab"
	wantErrno = "is not an errno name: want one such as EADDRINUSE, EADDRNOTAVAIL or EACCES"
	wantUID   = "is not a user id: want a number such as 0 or 1000 (see: id -u NAME)"
	wantKey   = "is not a filter term: keys are port:, sport:, dport:, pid:, uid:, comm:, state: and netns:"
)

// ParseFilter reads a filter line: terms separated by spaces or commas.
//
//	8080, :8080, port:8080  local or remote port
//	sport:N, dport:N        local, remote port
//	time-wait, tw, estab... a TCP state (ss's names, the kernel's, state:NAME)
//	bind, connect, listen   syscalls of that kind (listen is the LISTEN state too)
//	fail                    refused binds, connects and listens
//	EADDRINUSE              syscalls refused with that errno
//	pid:N, comm:NAME, NAME  the owner or the running task
//	uid:N                   the socket owner's uid, or a syscall's task's
//	netns:N, ipv4, ipv6     network namespace, address family
//
// Terms of one key are alternatives (8080 8443: either port), the others
// must all hold; see Filter for how states and syscalls combine.
func ParseFilter(s string) (Filter, error) {
	var f Filter
	for _, w := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) }) {
		if err := f.addWord(w); err != nil {
			return Filter{}, err
		}
	}
	return f, nil
}

// addWord adds one term of a filter line.
func (f *Filter) addWord(w string) error {
	if i := strings.IndexAny(w, ":="); i > 0 {
		key := strings.ToLower(w[:i])
		if !validKey(key) {
			return &TermError{w, wantKey + " (comm:NAME for a task name with a colon)"}
		}
		return f.Add(key, w[i+1:])
	}
	if w[0] == ':' || (w[0] >= '0' && w[0] <= '9') {
		return f.Add("port", w)
	}
	switch lw := strings.ToLower(w); lw {
	case "fail":
		f.Failed = true
		return nil
	case "bind", "connect", "listen":
		k, _ := ParseKind(lw)
		f.Kinds = appendNew(f.Kinds, k)
		if k == KindListen {
			f.States = appendNew(f.States, StateListen) // who listens, and who failed to
		}
		return nil
	case "ipv4", "ipv6":
		f.Family, _ = ParseFamily(lw)
		return nil
	}
	if st, ok := ParseStateName(w); ok {
		f.States = appendNew(f.States, st)
		return nil
	}
	if ret, ok := parseErrno(w); ok {
		f.Errnos = appendNew(f.Errnos, ret)
		return nil
	}
	if looksLikeErrno(w) {
		return &TermError{w, wantErrno}
	}
	if st, ok := nearState(w); ok {
		msg := "is not a TCP state: want " + st.Name()
		if printable(w) {
			msg += ", or comm:" + w + " for a task of that name"
		}
		return &TermError{w, msg}
	}
	return f.Add("comm", w)
}

// printable reports whether a word can be shown back as it is, in a
// suggestion outside the quotes.
func printable(w string) bool {
	for _, r := range w {
		if !strconv.IsPrint(r) {
			return false
		}
	}
	return true
}

func validKey(k string) bool {
	switch k {
	case "port", "sport", "dport", "pid", "uid", "comm", "state", "netns":
		return true
	}
	return false
}

// Add adds one value of a key: port, sport, dport, pid, uid, comm, state
// or netns, as --key value on the command line. Ports, uids and states
// accumulate (alternatives); a pid, a task name or a namespace can be given
// once.
func (f *Filter) Add(key, value string) error {
	switch key {
	case "port", "sport", "dport":
		p, err := parsePort(value)
		if err != nil {
			return err
		}
		switch key {
		case "port":
			f.Ports = appendNew(f.Ports, p)
		case "sport":
			f.LocalPorts = appendNew(f.LocalPorts, p)
		default:
			f.RemotePorts = appendNew(f.RemotePorts, p)
		}
	case "state":
		st, ok := ParseStateName(value)
		if !ok {
			return &TermError{value, wantState}
		}
		f.States = appendNew(f.States, st)
	case "pid":
		return setOnce(&f.PID, value, "process id", wantPID)
	case "uid":
		n, err := strconv.ParseUint(value, 10, 32)
		if err != nil || n == 1<<32-1 { // (uid_t)-1 is "no user"
			return &TermError{value, wantUID}
		}
		f.UIDs = appendNew(f.UIDs, uint32(n))
	case "netns":
		return setOnce(&f.NetNS, value, "network namespace", wantNetNS)
	case "comm":
		if value == "" || strings.IndexByte(value, 0) >= 0 {
			return &TermError{value, wantComm}
		}
		if f.Comm != "" && f.Comm != value {
			return &TermError{value, "is a second task name: the filter takes one, and " + strconv.Quote(f.Comm) + " is given"}
		}
		f.Comm = value
	default:
		return &TermError{key + ":" + value, wantKey}
	}
	return nil
}

// setOnce reads a number from 1 to 2^32-1 into *dst, which may hold it already.
func setOnce(dst *uint32, value, what, want string) error {
	n, err := strconv.ParseUint(value, 10, 32)
	if err != nil || n == 0 {
		return &TermError{value, want}
	}
	if *dst != 0 && *dst != uint32(n) {
		return &TermError{value, "is a second " + what + ": the filter takes one, and " +
			strconv.FormatUint(uint64(*dst), 10) + " is given"}
	}
	*dst = uint32(n)
	return nil
}

// parsePort reads 8080 or :8080.
func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimPrefix(s, ":"), 10, 16)
	if err != nil || n == 0 {
		return 0, &TermError{s, wantPort}
	}
	return uint16(n), nil
}

func appendNew[T comparable](s []T, v T) []T {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

// stateWords are the names people type for each state, in capitals and
// without separators: the kernel's (TIME_WAIT), ss's (time-wait,
// fin-wait-1, listening, closed) and the short ones (tw, estab).
var stateWords = map[string]State{
	"ESTABLISHED": StateEstablished, "ESTAB": StateEstablished, "EST": StateEstablished,
	"SYNSENT": StateSynSent, "SYNRECV": StateSynRecv,
	"FINWAIT1": StateFinWait1, "FINWAIT2": StateFinWait2,
	"TIMEWAIT": StateTimeWait, "TW": StateTimeWait,
	"CLOSE": StateClose, "CLOSED": StateClose,
	"CLOSEWAIT": StateCloseWait, "LASTACK": StateLastAck,
	"LISTEN": StateListen, "LISTENING": StateListen,
	"CLOSING": StateClosing, "NEWSYNRECV": StateNewSynRecv, "BOUNDINACTIVE": StateBoundInactive,
}

// ssNames are ss's names of the states, which Name returns.
var ssNames = [...]string{
	StateEstablished: "established", StateSynSent: "syn-sent", StateSynRecv: "syn-recv",
	StateFinWait1: "fin-wait-1", StateFinWait2: "fin-wait-2", StateTimeWait: "time-wait",
	StateClose: "closed", StateCloseWait: "close-wait", StateLastAck: "last-ack",
	StateListen: "listening", StateClosing: "closing", StateNewSynRecv: "new-syn-recv",
	StateBoundInactive: "bound-inactive",
}

// Name returns the state's name as ss's state filter spells it
// ("time-wait"), "" for an unknown state.
func (s State) Name() string {
	if int(s) < len(ssNames) {
		return ssNames[s]
	}
	return ""
}

// ParseStateName reads a state as people type it, in any case: the
// kernel's name with or without TCP_ (TIME_WAIT), ss's (time-wait,
// fin-wait-1, listening, closed), or tw, estab. ParseState reads only the
// schema's names.
func ParseStateName(s string) (State, bool) {
	st, ok := stateWords[stateKey(s)]
	return st, ok
}

// stateKey is s in capitals without TCP_, dashes and underscores.
func stateKey(s string) string {
	s = strings.ToUpper(s)
	s = strings.TrimPrefix(s, "TCP_")
	return strings.NewReplacer("-", "", "_", "").Replace(s)
}

// parseErrno reads an errno name in any case (EADDRINUSE) as -errno.
func parseErrno(s string) (int32, bool) {
	u := strings.ToUpper(s)
	if len(u) < 2 || u[0] != 'E' {
		return 0, false
	}
	return ParseErrno(u)
}

// looksLikeErrno: E and capitals, as no task name is typed.
func looksLikeErrno(s string) bool {
	if len(s) < 4 || s[0] != 'E' {
		return false
	}
	for i := range len(s) {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// nearState returns the state a word is a typo of: one edit away from a
// name of five or six letters, two from a longer one. Shorter words (tail,
// find) are task names.
func nearState(w string) (State, bool) {
	k := stateKey(w)
	if len(k) < 5 {
		return 0, false
	}
	best, found, dist := State(0), false, 3
	for _, name := range stateNamesSorted() {
		if len(name) < 5 {
			continue
		}
		limit := 1
		if len(name) > 6 {
			limit = 2
		}
		if d := editDistance(k, name, limit); d <= limit && d < dist {
			best, found, dist = stateWords[name], true, d
		}
	}
	return best, found
}

// stateNamesSorted lists stateWords' keys in order, so that a typo near two
// names is always told the same one.
var stateNamesSorted = sync.OnceValue(func() []string {
	return slices.Sorted(maps.Keys(stateWords))
})

// editDistance is the distance of a and b in insertions, deletions,
// substitutions and swaps of two neighbours (listne, listen), or limit+1 when
// it is more than limit.
func editDistance(a, b string, limit int) int {
	if d := len(a) - len(b); d > limit || -d > limit {
		return limit + 1
	}
	// Three rows of the matrix: the one before the previous is for swaps.
	rows := make([]int, 3*(len(b)+1))
	pp, prev, cur := rows[:len(b)+1], rows[len(b)+1:2*(len(b)+1)], rows[2*(len(b)+1):]
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], pp[j-2]+1)
			}
		}
		pp, prev, cur = prev, cur, pp
	}
	return prev[len(b)]
}
