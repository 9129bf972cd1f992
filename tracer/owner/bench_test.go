package owner

import (
	"testing"

	"github.com/prometheus/procfs"
)

// BenchmarkScan is one full index of the host's sockets, what a lookup of
// an unknown inode costs. Run as root to read every process.
func BenchmarkScan(b *testing.B) {
	keepAll := func(index, uint32) bool { return true }
	var st ScanStats
	for b.Loop() {
		var err error
		if _, st, err = scan("/proc", keepAll); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(st.Procs), "procs/op")
	b.ReportMetric(float64(st.FDs), "fds/op")
	b.ReportMetric(float64(st.Sockets), "sockets/op")
	b.ReportMetric(float64(st.Skipped), "skipped/op")
}

// BenchmarkScanProcfs does the same work through procfs's
// FileDescriptorTargets, to keep the reason for scan's own loop measured.
func BenchmarkScanProcfs(b *testing.B) {
	fs, err := procfs.NewFS("/proc")
	if err != nil {
		b.Fatal(err)
	}
	var fds, socks int
	for b.Loop() {
		fds, socks = 0, 0
		procs, err := fs.AllProcs()
		if err != nil {
			b.Fatal(err)
		}
		idx := make(index)
		for _, p := range procs {
			targets, err := p.FileDescriptorTargets()
			if err != nil {
				continue
			}
			for _, tg := range targets {
				fds++
				if ino, ok := socketInode([]byte(tg)); ok {
					socks++
					idx[ino] = append(idx[ino], fdRef{pid: uint32(p.PID)})
				}
			}
		}
	}
	b.ReportMetric(float64(fds), "fds/op")
	b.ReportMetric(float64(socks), "sockets/op")
}
