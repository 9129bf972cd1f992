package tracer

import (
	"reflect"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/twtrace/twtrace/tracer/event"
)

// The Go side of the ABI uses the constants bpf2go generates from
// headers/twtrace.h. These tests read the enums back from the compiled
// object's BTF, by name, and check that each Go name means what the C name
// says: a kind decodes to the event kind of that name, a counter index
// lands in the KernelStats field of that name.

// abiEnum returns the values of an enum of the state program's object.
func abiEnum(t *testing.T, name string) map[string]uint64 {
	t.Helper()
	spec, err := loadSockstate()
	if err != nil {
		t.Fatal(err)
	}
	var e *btf.Enum
	if err := spec.Types.TypeByName(name, &e); err != nil {
		t.Fatalf("enum %s in the object's BTF: %v", name, err)
	}
	out := map[string]uint64{}
	for _, v := range e.Values {
		out[v.Name] = v.Value
	}
	return out
}

func TestABIKinds(t *testing.T) {
	kinds := abiEnum(t, "tw_kind")
	if len(kinds) == 0 {
		t.Fatal("enum tw_kind is empty")
	}
	for name, v := range kinds {
		want := strings.ToLower(strings.TrimPrefix(name, "TW_KIND_"))
		got, ok := kindFromABI(uint8(v))
		if !ok || got.String() != want {
			t.Errorf("%s = %d decodes as %v (known %v), want the %q kind", name, v, got, ok, want)
		}
	}
	if _, ok := kindFromABI(0); ok {
		t.Error("kind 0 is no kind of the ABI")
	}
}

func TestABICounters(t *testing.T) {
	stats := abiEnum(t, "tw_stat")
	// The C names of the counters, in the Go spelling of KernelStats.
	rename := map[string]string{"SOCKMAP_FULL": "SockMapFull"}
	typ := reflect.TypeOf(KernelStats{})
	seen := 0
	for name, idx := range stats {
		short := strings.TrimPrefix(name, "TW_STAT_")
		if short == "MAX" {
			if int(idx) != len(sockstateTwCounters{}.V) {
				t.Errorf("TW_STAT_MAX = %d, tw_counters holds %d", idx, len(sockstateTwCounters{}.V))
			}
			continue
		}
		field := rename[short]
		if field == "" {
			for _, w := range strings.Split(short, "_") {
				field += w[:1] + strings.ToLower(w[1:])
			}
		}
		if _, ok := typ.FieldByName(field); !ok {
			t.Errorf("%s has no KernelStats field %s", name, field)
			continue
		}
		var c sockstateTwCounters
		c.V[idx] = 1000 + idx
		var s KernelStats
		s.add(&c)
		if got := reflect.ValueOf(s).FieldByName(field).Uint(); got != 1000+idx {
			t.Errorf("counter %s (index %d) lands in another field: %s = %d", name, idx, field, got)
		}
		seen++
	}
	if seen != int(statMax) {
		t.Errorf("%d counters in enum tw_stat, %d expected", seen, statMax)
	}
}

func TestABIFlagsAndLimits(t *testing.T) {
	flags := abiEnum(t, "tw_flag")
	for name, want := range map[string]uint8{
		"TW_F_OLD_KNOWN": flagOldKnown, "TW_F_OWNER_KNOWN": flagOwnerKnown, "TW_F_REUSEADDR": flagReuseAddr,
		"TW_F_REUSEPORT": flagReusePort, "TW_F_SOCK_KNOWN": flagSockKnown, "TW_F_SK_ERR": flagSkErr,
	} {
		if got, ok := flags[name]; !ok || uint8(got) != want {
			t.Errorf("%s = %d (present %v), Go uses %d", name, got, ok, want)
		}
	}
	if len(flags) != 6 {
		t.Errorf("enum tw_flag has %d flags, the decoder knows 6: decode the new one", len(flags))
	}
	limits := abiEnum(t, "tw_limit")
	if limits["TW_MAX_PORTS"] != uint64(MaxPorts) {
		t.Errorf("TW_MAX_PORTS = %d, MaxPorts %d", limits["TW_MAX_PORTS"], MaxPorts)
	}
	var c sockstateTwConfig
	if limits["TW_MAX_PORTS"] != uint64(len(c.Ports)) {
		t.Errorf("TW_MAX_PORTS = %d, tw_config.ports holds %d", limits["TW_MAX_PORTS"], len(c.Ports))
	}
	if limits["TW_MAX_UIDS"] != uint64(len(c.Uids)) {
		t.Errorf("TW_MAX_UIDS = %d, tw_config.uids holds %d (MaxUIDs)", limits["TW_MAX_UIDS"], len(c.Uids))
	}
	if limits["TW_COMM_LEN"] != uint64(len(event.Comm{})) {
		t.Errorf("TW_COMM_LEN = %d, event.Comm holds %d", limits["TW_COMM_LEN"], len(event.Comm{}))
	}
}
