// Package kring is the benchmark's ring-buffer floor: a BPF program on the
// tracepoint twtrace traces that reserves and submits one empty record of a
// state event's size per TCP transition, drained by a reader that only counts
// them. It measures what shipping anything to user space costs, so that
// twtrace's cost can be read against it on any machine.
package kring

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
)

//go:generate go tool bpf2go -target bpfel ring ring.c -- -O2 -g -Wall -Werror -I../../headers

// Floor is the attached program and its reader.
type Floor struct {
	objs   ringObjects
	lnk    link.Link
	reader *ringbuf.Reader
}

// Open loads and attaches the program.
func Open() (*Floor, error) {
	f := &Floor{}
	if err := loadRingObjects(&f.objs, nil); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	rd, err := ringbuf.NewReader(f.objs.Records)
	if err != nil {
		f.objs.Close()
		return nil, fmt.Errorf("ring buffer: %w", err)
	}
	f.reader = rd
	l, err := link.AttachTracing(link.TracingOptions{Program: f.objs.ReserveSubmit})
	if err != nil {
		rd.Close()
		f.objs.Close()
		return nil, fmt.Errorf("attach: %w", err)
	}
	f.lnk = l
	return f, nil
}

// Drain reads records until stop is closed, polling every poll as twtrace's
// reader does, then detaches the program, reads what is left and returns
// the records read.
func (f *Floor) Drain(stop <-chan struct{}, poll time.Duration) (uint64, error) {
	var rec ringbuf.Record
	var n uint64
	detached := false
	for {
		select {
		case <-stop:
			if !detached {
				f.lnk.Close()
				f.lnk, detached = nil, true
				time.Sleep(50 * time.Millisecond) // runs in progress end (an RCU grace period)
			}
		default:
		}
		if detached {
			f.reader.SetDeadline(time.Now())
		} else {
			f.reader.SetDeadline(time.Now().Add(poll))
		}
		err := f.reader.ReadInto(&rec)
		switch {
		case err == nil:
			n++
		case errors.Is(err, os.ErrDeadlineExceeded):
			if detached {
				return n, nil
			}
		default:
			return n, fmt.Errorf("read ring buffer: %w", err)
		}
	}
}

// Lost returns the transitions whose record found the ring full.
func (f *Floor) Lost() (uint64, error) {
	var per []uint64
	if err := f.objs.Lost.Lookup(uint32(0), &per); err != nil {
		return 0, err
	}
	var n uint64
	for _, v := range per {
		n += v
	}
	return n, nil
}

// Misses returns the runs the kernel skipped (the program was already
// running on the CPU): transitions neither shipped nor counted lost.
func (f *Floor) Misses() (uint64, error) {
	s, err := f.objs.ReserveSubmit.Stats()
	if err != nil {
		return 0, err
	}
	return s.RecursionMisses, nil
}

// Stats returns the program's run count and run time (with
// kernel.bpf_stats_enabled).
func (f *Floor) Stats() (runs, ns uint64, err error) {
	s, err := f.objs.ReserveSubmit.Stats()
	if err != nil {
		return 0, 0, err
	}
	return s.RunCount, uint64(s.Runtime), nil
}

// Close releases the reader and the program.
func (f *Floor) Close() {
	if f.lnk != nil {
		f.lnk.Close()
	}
	f.reader.Close()
	f.objs.Close()
}
