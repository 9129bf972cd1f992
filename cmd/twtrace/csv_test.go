package main

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"

	"github.com/twtrace/twtrace/internal/sample"
	"github.com/twtrace/twtrace/tracer/stream"
)

// replay --csv writes what trace --csv writes for the same events.
func TestReplayCSV(t *testing.T) {
	var want bytes.Buffer
	if err := stream.NewCSV(&want).Write(sample.Events()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"cap.jsonl", "cap.jsonl.zst"} {
		code, out, stderr := runCLI("replay", "--csv", writeCapture(t, name))
		if code != 0 || out != want.String() || stderr != "" {
			t.Errorf("replay --csv %s: exit %d, stderr %q, output:\n%s\nwant:\n%s", name, code, stderr, out, want.String())
			continue
		}
		recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
		if err != nil || len(recs) != len(sample.Events())+1 || strings.Join(recs[0], ",") != stream.CSVHeader {
			t.Errorf("replay --csv %s: %d records (%v)", name, len(recs), err)
		}
	}
}

// One output format at a time: a usage error before anything is loaded.
func TestOutputFormatsExclude(t *testing.T) {
	path := writeCapture(t, "cap.jsonl")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"trace", "--csv", "--json"}, "--json and --csv exclude each other"},
		{[]string{"replay", "--csv", "--json", path}, "--json and --csv exclude each other"},
		{[]string{"replay", "--csv", "--text", path}, "--csv and --text exclude each other"},
	} {
		code, out, stderr := runCLI(tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) || out != "" {
			t.Errorf("twtrace %v: exit %d, stderr %q, stdout %q; want exit 2 saying %q", tc.args, code, stderr, out, tc.want)
		}
	}
}
