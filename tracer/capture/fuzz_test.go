package capture

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/twtrace/twtrace/tracer/event"

	"github.com/klauspost/compress/zstd"

	"github.com/twtrace/twtrace/tracer/jsonl"
)

// FuzzReader: captures are untrusted. Whatever the bytes, plain or zstd,
// the reader never panics, ends with io.EOF or a *FormatError (the input
// is in memory: nothing else can fail), never returns a header as an event,
// and every event it delivers encodes and decodes back to itself.
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
		var ev event.Event
		for range 100_000 {
			err := r.Next(&ev)
			if err == io.EOF {
				return
			}
			if err != nil {
				var fe *FormatError
				var ce *CutError
				if !(errors.As(err, &fe) && fe.Line >= 2) && !(errors.As(err, &ce) && ce.Line >= 2) {
					t.Fatalf("Next: %v, want a *FormatError or a *CutError past the header", err)
				}
				if r.Next(&ev) != err {
					t.Fatalf("the error is not sticky")
				}
				return
			}
			if ev.Kind == event.KindHeader {
				t.Fatalf("a header delivered as an event")
			}
			var back event.Event
			if err := jsonl.Decode(jsonl.Append(nil, &ev), &back); err != nil {
				t.Fatalf("delivered event does not re-encode: %v", err)
			}
		}
	})
}
