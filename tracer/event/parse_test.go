package event

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseFilterAccepts(t *testing.T) {
	tw, est, listen := StateTimeWait, StateEstablished, StateListen
	for _, c := range []struct {
		in   string
		want Filter
	}{
		{"", Filter{}},
		{"8080", Filter{Ports: []uint16{8080}}},
		{":8080 8443,port:9090", Filter{Ports: []uint16{8080, 8443, 9090}}},
		{"8080 8080", Filter{Ports: []uint16{8080}}},
		{"sport:8080 dport::5432 sport=81", Filter{LocalPorts: []uint16{8080, 81}, RemotePorts: []uint16{5432}}},
		{"tw", Filter{States: []State{tw}}},
		{"time-wait TIME_WAIT tcp_time_wait timewait state:tw", Filter{States: []State{tw}}},
		{"estab established ESTABLISHED est", Filter{States: []State{est}}},
		{"syn-sent syn-recv fin-wait-1 fin-wait-2 closed close-wait last-ack closing",
			Filter{States: []State{StateSynSent, StateSynRecv, StateFinWait1, StateFinWait2, StateClose,
				StateCloseWait, StateLastAck, StateClosing}}},
		{"listening", Filter{States: []State{listen}}},
		{"state:listen", Filter{States: []State{listen}}},
		{"listen", Filter{States: []State{listen}, Kinds: []Kind{KindListen}}},
		{"bind connect", Filter{Kinds: []Kind{KindBind, KindConnect}}},
		{"fail", Filter{Failed: true}},
		{"FAIL bind", Filter{Failed: true, Kinds: []Kind{KindBind}}},
		{"EADDRINUSE eaddrnotavail", Filter{Errnos: []int32{-98, -99}}},
		{"pid:4120", Filter{PID: 4120}},
		{"uid:0 uid:1000", Filter{UIDs: []uint32{0, 1000}}},
		{"PID=4120 pid:4120", Filter{PID: 4120}},
		{"nginx", Filter{Comm: "nginx"}},
		{"comm:nginx", Filter{Comm: "nginx"}},
		{"comm:kworker/0:1", Filter{Comm: "kworker/0:1"}},
		{"comm:tw", Filter{Comm: "tw"}},
		{"netns:4026531840 ipv6", Filter{NetNS: 4026531840, Family: FamilyIPv6}},
		{"8080 tw fail nginx", Filter{Ports: []uint16{8080}, States: []State{tw}, Failed: true, Comm: "nginx"}},
	} {
		got, err := ParseFilter(c.in)
		if err != nil {
			t.Errorf("ParseFilter(%q): %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseFilter(%q) = %+v, want %+v", c.in, got, c.want)
		}
		back, err := ParseFilter(got.String())
		if err != nil || !reflect.DeepEqual(back, got) {
			t.Errorf("ParseFilter(%q).String() = %q reads back as %+v, %v", c.in, got.String(), back, err)
		}
	}
}

// The look-alikes of accepted terms are refused, each with one sentence
// that names what is accepted.
func TestParseFilterRejects(t *testing.T) {
	for in, want := range map[string]string{
		"70000":       `"70000" is not a port: want a number from 1 to 65535`,
		"0":           `"0" is not a port: want a number from 1 to 65535`,
		"8080x":       `"8080x" is not a port: want a number from 1 to 65535`,
		"port:":       `"" is not a port: want a number from 1 to 65535`,
		"sport:http":  `"http" is not a port: want a number from 1 to 65535`,
		"pid:x":       `"x" is not a process id: want a number from 1 to 4294967295`,
		"pid:0":       `"0" is not a process id: want a number from 1 to 4294967295`,
		"pid:-1":      `"-1" is not a process id: want a number from 1 to 4294967295`,
		"pid:1 pid:2": `"2" is a second process id: the filter takes one, and 1 is given`,
		"netns:abc":   `"abc" is not a network namespace inode: want the number ls -Li /proc/PID/ns/net prints`,
		"comm:":       `"" is not a task name: want the name ps -o comm shows (its first 15 bytes are compared)`,
		"nginx curl":  `"curl" is a second task name: the filter takes one, and "nginx" is given`,
		"state:estab1": `"estab1" is not a TCP state: want one of ss's (established, syn-sent, syn-recv, fin-wait-1, ` +
			`fin-wait-2, time-wait, closed, close-wait, last-ack, listening, closing), a kernel name such as TIME_WAIT, or tw, estab`,
		"estabished":     `"estabished" is not a TCP state: want established, or comm:estabished for a task of that name`,
		"time_wiat":      `"time_wiat" is not a TCP state: want time-wait, or comm:time_wiat for a task of that name`,
		"fin-wait-3":     `"fin-wait-3" is not a TCP state: want fin-wait-1, or comm:fin-wait-3 for a task of that name`,
		"listne":         `"listne" is not a TCP state: want listening, or comm:listne for a task of that name`,
		"estabished\n":   `"estabished" is not a TCP state: want established, or comm:estabished for a task of that name`,
		"estabished\x01": `"estabished\x01" is not a TCP state: want established`,
		"EADDRINUS":      `"EADDRINUS" is not an errno name: want one such as EADDRINUSE, EADDRNOTAVAIL or EACCES`,
		"prot:8080": `"prot:8080" is not a filter term: keys are port:, sport:, dport:, pid:, uid:, comm:, state: and netns: ` +
			`(comm:NAME for a task name with a colon)`,
		"uid:x":          `"x" is not a user id: want a number such as 0 or 1000 (see: id -u NAME)`,
		"uid:4294967295": `"4294967295" is not a user id: want a number such as 0 or 1000 (see: id -u NAME)`,
	} {
		f, err := ParseFilter(in)
		var te *TermError
		if !errors.As(err, &te) || err.Error() != want {
			t.Errorf("ParseFilter(%q) = %+v, %v\nwant error %s", in, f, err, want)
		}
	}
	// Short words near a keyword are task names, not typos: tail, find.
	for _, name := range []string{"tail", "find", "mail", "bash", "sshd", "closer1x", "php-fpm", "Xorg", "E2E"} {
		if f, err := ParseFilter(name); err != nil || f.Comm != name {
			t.Errorf("ParseFilter(%q) = %+v, %v; want the task name", name, f, err)
		}
	}
}

func TestAddIsTheFlagsParser(t *testing.T) {
	var f Filter
	for _, kv := range [][2]string{{"port", "8080"}, {"sport", ":81"}, {"dport", "5432"}, {"state", "time-wait"},
		{"state", "LISTEN"}, {"pid", "42"}, {"comm", "php fpm"}, {"netns", "7"}} {
		if err := f.Add(kv[0], kv[1]); err != nil {
			t.Fatalf("Add(%s, %s): %v", kv[0], kv[1], err)
		}
	}
	want := Filter{Ports: []uint16{8080}, LocalPorts: []uint16{81}, RemotePorts: []uint16{5432},
		States: []State{StateTimeWait, StateListen}, PID: 42, Comm: "php fpm", NetNS: 7}
	if !reflect.DeepEqual(f, want) {
		t.Errorf("Add built %+v, want %+v", f, want)
	}
	// A state flag takes a state name only: listen is the state, not the kind.
	if f.Kinds != nil {
		t.Errorf("--state LISTEN added kinds %v", f.Kinds)
	}
	if err := f.Add("state", "ESTABLISH"); err == nil || !strings.HasPrefix(err.Error(), `"ESTABLISH" is not a TCP state: want one of ss's`) {
		t.Errorf("Add(state, ESTABLISH): %v", err)
	}
	if err := f.Add("comm", ""); err == nil {
		t.Error(`Add(comm, "") accepted an empty task name`)
	}
}

func TestStateNamesOfSS(t *testing.T) {
	for s := StateEstablished; s <= StateBoundInactive; s++ {
		if got, ok := ParseStateName(s.Name()); !ok || got != s {
			t.Errorf("%s: ss name %q reads back as %v, %v", s, s.Name(), got, ok)
		}
		if got, ok := ParseStateName(s.String()); !ok || got != s {
			t.Errorf("%s: kernel name reads back as %v, %v", s, got, ok)
		}
	}
	if State(0).Name() != "" || State(99).Name() != "" {
		t.Error("unknown states have an ss name")
	}
}

func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"8080 tw", "sport:80,dport:443", "pid:1 comm:x fail", "EADDRINUSE bind",
		"listen", "estabished", "comm:a:b", "netns:1 ipv4", ":0", "state:fin-wait-1", "estA\n", "estA\x01", "8080\v\ftw"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		flt, err := ParseFilter(s)
		if err != nil {
			var te *TermError
			if !errors.As(err, &te) || strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("ParseFilter(%q): error %q is not one TermError sentence", s, err)
			}
			return
		}
		if err := flt.Validate(); err != nil {
			t.Fatalf("ParseFilter(%q) built an invalid filter: %v", s, err)
		}
		back, err := ParseFilter(flt.String())
		if err != nil || !reflect.DeepEqual(back, flt) {
			t.Fatalf("ParseFilter(%q) = %+v; its String %q reads back as %+v, %v", s, flt, flt.String(), back, err)
		}
	})
}
