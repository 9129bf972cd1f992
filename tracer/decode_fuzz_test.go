package tracer

import (
	"errors"
	"reflect"
	"testing"
	"time"
	"unsafe"

	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/text"
)

// recordSize is the size Decode needs for a record of the ABI kind k, and
// false for a kind the ABI does not have.
func recordSize(k uint8) (int, bool) {
	kind, ok := kindFromABI(k)
	switch {
	case !ok:
		return 0, false
	case kind == event.KindState:
		return sizeofStateEvent, true
	}
	return sizeofSysEvent, true
}

// Every length of every kind's record: one byte short of its struct is a
// short record, the struct's size (or more: the ring buffer rounds up)
// decodes.
func TestDecodeEveryLength(t *testing.T) {
	for k := range uint8(8) {
		size, ok := recordSize(k)
		for n := 1; n <= max(size, 200)+8; n++ {
			raw := make([]byte, n)
			raw[0] = k
			var ev event.Event
			err := Decode(raw, testClock, &ev)
			switch {
			case !ok && err == nil:
				t.Fatalf("kind %d is not in the ABI, yet %d bytes decoded", k, n)
			case ok && n < size && !errors.Is(err, ErrShortRecord):
				t.Fatalf("kind %d, %d of %d bytes: %v; want ErrShortRecord", k, n, size, err)
			case ok && n >= size && err != nil:
				t.Fatalf("kind %d, %d bytes (its struct: %d): %v", k, n, size, err)
			}
		}
	}
}

// FuzzDecodeRecord: whatever bytes a ring buffer hands over, Decode
// returns an error or an event of the record's kind, the same event each
// time, and one the text renderer can show; it never panics.
func FuzzDecodeRecord(f *testing.F) {
	state := make([]byte, sizeofStateEvent)
	putHead(state, 1, flagOldKnown|flagOwnerKnown, 2, 4121, 4122, 4026531840, 1_500_000_000, 0, "nginx")
	state[64], state[65], state[66], state[67] = 127, 0, 0, 1
	bind := make([]byte, sizeofSysEvent)
	putHead(bind, 2, flagSockKnown|flagReuseAddr, 10, 7, 7, 1, 2, 0, "web")
	f.Add(state)
	f.Add(bind)
	f.Add(state[:sizeofStateEvent-1])
	f.Add([]byte{3})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		// A record as the ring buffer hands it out: 8-byte aligned.
		buf := make([]uint64, (len(raw)+7)/8)
		rec := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(buf))), len(buf)*8)[:len(raw)]
		copy(rec, raw)
		var ev event.Event
		err := Decode(rec, testClock, &ev)
		var need int
		known := false
		if len(raw) > 0 {
			need, known = recordSize(raw[0])
		}
		switch {
		case !known:
			if err == nil {
				t.Fatalf("%d bytes of kind %v decoded", len(raw), raw[:min(1, len(raw))])
			}
			return
		case len(raw) < need:
			if !errors.Is(err, ErrShortRecord) {
				t.Fatalf("%d of %d bytes: %v", len(raw), need, err)
			}
			return
		case err != nil:
			t.Fatalf("%d bytes of kind %d: %v", len(raw), raw[0], err)
		}
		if want, _ := kindFromABI(raw[0]); ev.Kind != want {
			t.Fatalf("kind %d decoded as %v", raw[0], ev.Kind)
		}
		var again event.Event
		if Decode(rec, testClock, &again); !reflect.DeepEqual(ev, again) {
			t.Fatalf("decoded twice, two events:\n%+v\n%+v", ev, again)
		}
		var line []byte
		for c := range text.NumColumns {
			line = text.AppendColumn(line, &ev, c, time.UTC)
		}
		_ = text.AppendSummary(line, &ev)
	})
}
