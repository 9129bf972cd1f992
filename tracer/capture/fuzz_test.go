package capture

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/twtrace/twtrace/tracer/event"

	"github.com/klauspost/compress/zstd"

	"github.com/twtrace/twtrace/tracer/jsonl"
	"github.com/twtrace/twtrace/tracer/table"
)

// FuzzReader: captures are untrusted. Whatever the bytes, plain or zstd,
// the reader never panics, ends with io.EOF, a *CutError or a *FormatError
// past the header (the input is in memory: nothing else can fail), never
// returns a header, socket or end record as an event; every event and
// every socket of the snapshot it delivers encodes and decodes back to
// itself; an end record it accepts counts the events delivered. Seeds in
// code and under testdata/fuzz/FuzzReader: every record kind, plain and
// compressed, whole, cut and damaged.
func FuzzReader(f *testing.F) {
	plain := encode(f, Options{}, 30)
	f.Add(plain, false)
	f.Add(plain, true) // compressed by the fuzz body
	f.Add(encode(f, Options{Compress: true, FlushBytes: 1 << 10}, 30), false)
	f.Add(plain[:len(plain)-7], false)
	f.Add(plain[:len(plain)/2], true)
	f.Add([]byte{}, false)
	f.Add([]byte("\x28\xb5\x2f\xfd"), false)
	f.Add([]byte(`{"kind":"header","ts":"2026-01-01T00:00:00Z","version":1,"started":"2026-01-01T00:00:00Z"}`+"\n"+
		`{"kind":"lost","ts":"2026-01-01T00:00:00Z","count":1}`+"\n"), false)
	snap := withSnapshot(f, Options{})
	f.Add(snap, false)
	f.Add(snap, true)
	f.Add(withSnapshot(f, Options{Compress: true}), false)

	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte, compress bool) {
		if compress {
			data = enc.EncodeAll(data, nil)
		}
		r, err := NewReader(bytes.NewReader(data), "fuzz")
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("NewReader: %v, want a *FormatError", err)
			}
			return
		}
		defer r.Close()
		if v := r.Header().Version; v < oldestVersion || v > Version {
			t.Fatalf("accepted header version %d", v)
		}
		socks, at := r.Snapshot()
		for i := range socks {
			var back table.Socket
			if _, err := jsonl.DecodeSocket(jsonl.AppendSocketRecord(nil, &socks[i], at), &back); err != nil || !reflect.DeepEqual(back, socks[i]) {
				t.Fatalf("a socket of the snapshot does not re-encode: %v\n%+v\n%+v", err, socks[i], back)
			}
		}
		var ev event.Event
		for range 100_000 {
			err := r.Next(&ev)
			if err == io.EOF {
				if end, ok := r.End(); ok && end.Events != r.Events() {
					t.Fatalf("end record of %d events accepted after %d", end.Events, r.Events())
				}
				return
			}
			if err != nil {
				var fe *FormatError
				var ce *CutError
				if !(errors.As(err, &fe) && fe.Line >= 2) && !(errors.As(err, &ce) && ce.Line >= 2 && ce.Events == r.Events()) {
					t.Fatalf("Next: %v, want a *FormatError or a *CutError past the header", err)
				}
				if r.Next(&ev) != err {
					t.Fatalf("the error is not sticky")
				}
				return
			}
			switch ev.Kind {
			case event.KindHeader, event.KindSocket, event.KindEnd:
				t.Fatalf("a %s record delivered as an event", ev.Kind)
			}
			var back event.Event
			if err := jsonl.Decode(jsonl.Append(nil, &ev), &back); err != nil {
				t.Fatalf("delivered event does not re-encode: %v", err)
			}
		}
	})
}
