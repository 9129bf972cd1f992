package capture

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/twtrace/twtrace/internal/sample"
	"github.com/twtrace/twtrace/tracer/jsonl"
)

// docs/jsonl.md is the schema's contract: every field of every kind this
// package and tracer/jsonl write is documented there, and its example is a
// capture that reads back.
func TestSchemaDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/jsonl.md")
	if err != nil {
		t.Fatal(err)
	}
	var lines [][]byte
	var buf bytes.Buffer
	w, err := NewWriter(&buf, "mem", testHeader(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	socks := snapshotSockets()
	socks[0].Container = "4f1c2a9b3e7d"
	w.WriteSnapshot(socks, sample.Start)
	evs := sample.Events()
	for i := range evs { // the uid where the tracer knows it
		if evs[i].Kind != 0 && i%2 == 0 {
			evs[i].UID, evs[i].UIDKnown = 1000, true
		}
	}
	w.Write(evs)
	w.End(EndSignal, &Counters{})
	lines = append(lines, bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))...)
	lines = append(lines, bytes.TrimSpace(jsonl.AppendSocket(nil, &socks[0], sample.Start)))
	h := testHeader()
	h.NetNS, h.Counters, h.Redacted = 1, &Counters{}, true
	h.Degraded = []string{"continuing without bind/connect/listen events: ..."}
	hl, _ := encodeHeader(h)
	lines = append(lines, bytes.TrimSpace(hl))
	kinds := map[string]bool{}
	for _, l := range lines {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		var kind string
		json.Unmarshal(m["kind"], &kind)
		kinds[kind] = true
		for k := range m {
			if !bytes.Contains(doc, []byte("`"+k+"`")) {
				t.Errorf("field %q of a %q record is not in docs/jsonl.md", k, kind)
			}
		}
		if c, ok := m["counters"]; ok {
			var cm map[string]any
			json.Unmarshal(c, &cm)
			for k := range cm {
				if !bytes.Contains(doc, []byte("`"+k+"`")) {
					t.Errorf("counter %q is not in docs/jsonl.md", k)
				}
			}
		}
	}
	for k := range kinds {
		if k != "" && !bytes.Contains(doc, []byte("### `"+k+"`")) {
			t.Errorf("kind %q has no section in docs/jsonl.md", k)
		}
	}
	// The example.
	_, rest, _ := strings.Cut(string(doc), "## Example")
	_, block, _ := strings.Cut(rest, "```json\n")
	block, _, _ = strings.Cut(block, "```")
	r, err := NewReader(strings.NewReader(block), "docs/jsonl.md")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(t, r); err != nil {
		t.Errorf("the example: %v", err)
	}
	if socks, _ := r.Snapshot(); len(socks) != 2 {
		t.Errorf("the example's snapshot: %d sockets", len(socks))
	}
}
