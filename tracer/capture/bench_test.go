package capture

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/twtrace/twtrace/tracer/event"
)

// BenchmarkWriter measures capture writing into a file, as record does:
// batches of 256 events (a busy ring buffer poll) of a realistic stream.
// It reports events/s, bytes per event in the file and the compression ratio.
func BenchmarkWriter(b *testing.B) {
	evs := stream(1 << 16)
	const batch = 256
	rawPerEvent := float64(rawSize(b, evs)) / float64(len(evs))
	for _, name := range []string{"plain.jsonl", "zstd.jsonl.zst"} {
		b.Run(filepath.Ext(name)[1:], func(b *testing.B) {
			path := filepath.Join(b.TempDir(), name)
			w, err := Create(path, testHeader(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				i := (n * batch) % len(evs)
				if err := w.Write(evs[i : i+batch]); err != nil {
					b.Fatal(err)
				}
				n++
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
			events := float64(n * batch)
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(events/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(w.Bytes())/events, "B/event")
			b.ReportMetric(rawPerEvent*events/float64(w.Bytes()), "ratio")
			os.Remove(path)
		})
	}
}

// rawSize is the JSON size of evs.
func rawSize(b *testing.B, evs []event.Event) int {
	b.Helper()
	w, err := NewWriter(io.Discard, "raw", testHeader(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	before := w.Bytes()
	if err := w.Write(evs); err != nil {
		b.Fatal(err)
	}
	return int(w.Bytes() - before)
}

// BenchmarkReader measures reading a capture back, as replay --speed 0 does.
func BenchmarkReader(b *testing.B) {
	for _, opt := range []Options{{}, {Compress: true}} {
		data := encode(b, opt, 1<<14)
		name := "jsonl"
		if opt.Compress {
			name = "zst"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			events := 0
			for b.Loop() {
				r, err := NewReader(bytes.NewReader(data), "mem")
				if err != nil {
					b.Fatal(err)
				}
				var ev event.Event
				for r.Next(&ev) == nil {
					events++
				}
				r.Close()
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
