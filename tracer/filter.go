package tracer

import (
	"fmt"

	"github.com/twtrace/twtrace/tracer/event"
)

// MaxPorts is how many ports the in-kernel filter holds (TW_MAX_PORTS).
const MaxPorts = int(sockstateTwLimitTW_MAX_PORTS)

// MaxUIDs is how many uids the in-kernel filter holds (TW_MAX_UIDS).
const MaxUIDs = int(sockstateTwLimitTW_MAX_UIDS)

// kernelConfig is the part of a filter that the BPF programs apply, set in
// their .rodata before loading: ports, pid, uids, network namespace and family.
func kernelConfig(f *event.Filter) (sockstateTwConfig, error) {
	var c sockstateTwConfig
	if len(f.Ports) > MaxPorts {
		return c, fmt.Errorf("at most %d ports can be filtered in the kernel, got %d", MaxPorts, len(f.Ports))
	}
	if len(f.UIDs) > MaxUIDs {
		return c, fmt.Errorf("at most %d uids can be filtered in the kernel, got %d", MaxUIDs, len(f.UIDs))
	}
	if err := f.Validate(); err != nil {
		return c, err
	}
	c.Nports = uint32(copy(c.Ports[:], f.Ports))
	c.Nuids = uint32(copy(c.Uids[:], f.UIDs))
	c.Pid = f.PID
	c.Netns = f.NetNS
	c.Family = uint16(f.Family)
	return c, nil
}
