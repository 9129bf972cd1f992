package capture

import (
	"bytes"
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/twtrace/twtrace/tracer/event"

	"github.com/twtrace/twtrace/internal/sample"
)

// collect replays data at speed and returns the batches.
func collect(t *testing.T, ctx context.Context, data []byte, speed float64) ([][]event.Event, error) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(data), "mem")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var batches [][]event.Event
	err = r.Run(ctx, speed, func(b []event.Event) error {
		if len(b) == 0 || len(b) > maxBatch {
			t.Errorf("batch of %d events", len(b))
		}
		batches = append(batches, append([]event.Event(nil), b...))
		return nil
	})
	return batches, err
}

func flatten(batches [][]event.Event) []event.Event {
	var out []event.Event
	for _, b := range batches {
		out = append(out, b...)
	}
	return out
}

func TestRunAsFastAsPossible(t *testing.T) {
	data := encode(t, Options{Compress: true}, 3000)
	batches, err := collect(t, context.Background(), data, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := flatten(batches); !sameEvents(got, stream(3000)) {
		t.Errorf("replayed %d events, not the 3000 written", len(got))
	}
	if len(batches) != 3 {
		t.Errorf("%d batches, want 3 of at most %d", len(batches), maxBatch)
	}
}

// paced is a capture of 30 events: 20 in the first 19 ms, 10 more 50 s later.
func paced(t *testing.T) ([]byte, []event.Event) {
	t.Helper()
	evs := stream(30)
	for i := range evs {
		evs[i].Time = sample.Start.Add(time.Duration(i) * time.Millisecond)
		if i >= 20 {
			evs[i].Time = evs[i].Time.Add(50 * time.Second)
		}
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, "mem", testHeader(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(evs); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), evs
}

// At speed 1000 the 50 s gap takes 50 ms, and events recorded close
// together arrive together.
func TestRunPaced(t *testing.T) {
	data, evs := paced(t)
	start := time.Now()
	batches, err := collect(t, context.Background(), data, 1000)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if got := flatten(batches); !sameEvents(got, evs) {
		t.Errorf("replayed %d events", len(got))
	}
	if elapsed < 50*time.Millisecond || elapsed > 2*time.Second {
		t.Errorf("replay at speed 1000 took %v, want about 50 ms", elapsed)
	}
	if first := batches[0]; first[len(first)-1].Time.After(evs[19].Time) {
		t.Errorf("the first batch reaches across the 50 s gap: not paced")
	}
	if len(batches) > 25 {
		t.Errorf("%d batches for 30 events, most due within a millisecond of each other", len(batches))
	}
}

func TestRunStopsWithContext(t *testing.T) {
	data, evs := paced(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	batches, err := collect(t, ctx, data, 1)
	if err != nil || time.Since(start) > time.Second {
		t.Fatalf("Run after the context ended: %v, after %v", err, time.Since(start))
	}
	if n := len(flatten(batches)); n != 20 {
		t.Errorf("%d events in the first 200 ms, want the 20 of the first 19 ms (of %d)", n, len(evs))
	}
}

// A cut or damaged capture: Run delivers what precedes the cut or the
// damage, then the error.
func TestRunDeliversBeforeError(t *testing.T) {
	data := encode(t, Options{}, 2500)
	endLine := bytes.LastIndexByte(data[:len(data)-1], '\n') + 1
	batches, err := collect(t, context.Background(), data[:endLine-10], 0)
	var ce *CutError
	if !errors.As(err, &ce) || ce.Line != 2501 || ce.Events != 2499 {
		t.Fatalf("Run on a cut file: %v", err)
	}
	if got := flatten(batches); !sameEvents(got, stream(2499)) {
		t.Errorf("%d events before the cut, want 2499", len(got))
	}
	damaged := bytes.Clone(data)
	damaged[endLine-10] = '}'
	batches, err = collect(t, context.Background(), damaged, 0)
	var fe *FormatError
	if !errors.As(err, &fe) || fe.Line != 2501 {
		t.Fatalf("Run on a damaged file: %v", err)
	}
	if got := flatten(batches); !sameEvents(got, stream(2499)) {
		t.Errorf("%d events before the damage, want 2499", len(got))
	}
}

func TestRunErrors(t *testing.T) {
	data := encode(t, Options{}, 10)
	r, err := NewReader(bytes.NewReader(data), "mem")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []float64{-1, math.NaN(), math.Inf(1)} {
		if err := r.Run(context.Background(), bad, func([]event.Event) error { return nil }); err == nil {
			t.Errorf("speed %v accepted", bad)
		}
	}
	stop := errors.New("sink full")
	if err := r.Run(context.Background(), 0, func([]event.Event) error { return stop }); err != stop {
		t.Errorf("Run returned %v, want the sink's error", err)
	}
}
