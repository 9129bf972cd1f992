package jsonl

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/twtrace/twtrace/tracer/event"

	"github.com/twtrace/twtrace/internal/sample"
)

// agree checks scanFlat against encoding/json on one line: where the fast
// path takes a line, json.Unmarshal must accept it and make the same record.
func agree(t *testing.T, line []byte) (fast bool) {
	t.Helper()
	var (
		got record
		st  store
	)
	if !scanFlat(line, &got, &st) {
		return false
	}
	var want record
	if err := json.Unmarshal(line, &want); err != nil {
		t.Fatalf("scanFlat took %q, json.Unmarshal refuses it: %v", line, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\nscanFlat       %s\njson.Unmarshal %s", line, dump(got), dump(want))
	}
	return true
}

func dump(r record) string {
	b, _ := json.Marshal(r)
	return string(b)
}

var scanCases = []struct {
	line string
	fast bool // whether the fast path must take it
}{
	{`{}`, true},
	{` { } `, true},
	{"\t{\"kind\" : \"lost\" ,\r\n\"count\":17}\r", true},
	{`{"kind":"lost","count":18446744073709551615}`, true},
	{`{"kind":"lost","count":18446744073709551616}`, false}, // overflow: json's error
	{`{"sport":65535,"dport":0}`, true},
	{`{"sport":65536}`, false},
	{`{"sport":-0}`, false},
	{`{"fd":-0,"ret":-98}`, true},
	{`{"fd":2147483648}`, false},
	{`{"fd":-2147483648,"ret":2147483647}`, true},
	{`{"fd":-2147483649}`, false},
	{`{"remaining_ms":9223372036854775807}`, true},
	{`{"remaining_ms":9223372036854775808}`, false},
	{`{"count":-1}`, false},
	{`{"count":-0}`, false},
	{`{"pid":4294967295,"netns":0}`, true},
	{`{"pid":4294967296}`, false},
	{`{"pid":-1}`, false},
	{`{"pid":1.0}`, false},
	{`{"pid":1e3}`, false},
	{`{"pid":01}`, false},
	{`{"pid":"1"}`, false},
	{`{"remaining_ms":-9223372036854775808}`, true},
	{`{"old_ms":1.5e-3}`, true},
	{`{"old_ms":0.004}`, true},
	{`{"old_ms":null}`, true},
	{`{"old_ms":"1"}`, false},
	{`{"old_ms":1.}`, false},
	{`{"old_ms":.5}`, false},
	{`{"old_ms":-}`, false},
	{`{"old_ms":1e}`, false},
	{`{"old_ms":1E+2}`, true},
	{`{"comm":"a b~\u0041"}`, false},            // escape
	{`{"comm":"caf` + "\xc3\xa9" + `"}`, false}, // non-ASCII
	{`{"comm":"` + "\x7f" + `"}`, true},
	{"{\"comm\":\"\x01\"}", false},
	{`{"comm":null}`, true},
	{`{"comm":"x","comm":null}`, true},
	{`{"comm":null,"comm":"y"}`, true},
	{`{"kind":null}`, true},
	{`{"kind":"state","kind":null}`, true},
	{`{"reset":true,"reset":null}`, true},
	{`{"reset":1}`, false},
	{`{"reuseaddr":false,"reuseport":true}`, true},
	{`{"reuseaddr":null}`, true},
	{`{"reuseaddr":"true"}`, false},
	{`{"Kind":"state"}`, false}, // json matches keys without case
	{`{"SPORT":1}`, false},
	{`{"future":"x","other":12.5,"flag":false,"nothing":null}`, true},
	{`{"future":{"a":1}}`, false},
	{`{"future":[1]}`, false},
	{`{"kind":"lost",}`, false},
	{`{"kind":"lost"`, false},
	{`{"kind":"lost"}x`, false},
	{`{"kind":"lost"}{}`, false},
	{`{"kind" "lost"}`, false},
	{`{kind:"lost"}`, false},
	{`[]`, false},
	{``, false},
	{`{"count":tru}`, false},
	{`{"count":nul}`, false},
}

func TestScanFlatAgreesWithJSON(t *testing.T) {
	for _, c := range scanCases {
		if fast := agree(t, []byte(c.line)); fast != c.fast {
			t.Errorf("%q: fast path %v, want %v", c.line, fast, c.fast)
		}
	}
}

// TestScanFlatTakesWhatTwtraceWrites: every record the encoder writes takes
// the fast path, or captures would replay at encoding/json's speed; only a
// name that needs escapes is left to encoding/json.
func TestScanFlatTakesWhatTwtraceWrites(t *testing.T) {
	for _, line := range bytes.Split(bytes.TrimSpace(encodeAll(sample.Events())), []byte("\n")) {
		escaped := bytes.IndexByte(line, '\\') >= 0
		if fast := agree(t, line); fast == escaped {
			t.Errorf("fast path %v for %s", fast, line)
		}
	}
}

// FuzzScanFlat: the fast path never disagrees with encoding/json.
func FuzzScanFlat(f *testing.F) {
	for _, c := range scanCases {
		f.Add([]byte(c.line))
	}
	for _, line := range bytes.Split(encodeAll(sample.Events()), []byte("\n")) {
		f.Add(line)
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		agree(t, line)
	})
}

// BenchmarkDecode: a captured line back to an Event, as replay reads them.
func BenchmarkDecode(b *testing.B) {
	lines := bytes.Split(bytes.TrimSpace(encodeAll(sample.Events())), []byte("\n"))
	var ev event.Event
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		for _, line := range lines {
			if err := Decode(line, &ev); err != nil {
				b.Fatal(err)
			}
		}
		n += len(lines)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/event")
}
