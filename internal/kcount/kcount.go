// Package kcount is an independent in-kernel count of TCP state
// transitions: a BPF program on the tracepoint twtrace traces, that only
// counts. Tests and the benchmark check that what twtrace delivered plus what
// it reported lost equals this count.
package kcount

import (
	"fmt"

	"github.com/cilium/ebpf/link"
)

//go:generate go tool bpf2go -target bpfel counter counter.c -- -O2 -g -Wall -Werror -I../../headers

// Counter counts TCP transitions from when it is opened until it is closed.
type Counter struct {
	objs counterObjects
	lnk  link.Link
}

// Open loads and attaches the counter. With port non-zero it counts only the
// transitions of sockets whose local or remote port is port; with netns
// non-zero, only those of sockets in that network namespace (its inode).
func Open(port uint16, netns uint32) (*Counter, error) {
	spec, err := loadCounter()
	if err != nil {
		return nil, err
	}
	if err := spec.Variables["port"].Set(port); err != nil {
		return nil, fmt.Errorf("configure: %w", err)
	}
	if err := spec.Variables["netns"].Set(netns); err != nil {
		return nil, fmt.Errorf("configure: %w", err)
	}
	c := &Counter{}
	if err := spec.LoadAndAssign(&c.objs, nil); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	l, err := link.AttachTracing(link.TracingOptions{Program: c.objs.CountTransition})
	if err != nil {
		c.objs.Close()
		return nil, fmt.Errorf("attach: %w", err)
	}
	c.lnk = l
	return c, nil
}

// Read returns the transitions counted so far.
func (c *Counter) Read() (uint64, error) {
	var per []uint64
	if err := c.objs.Transitions.Lookup(uint32(0), &per); err != nil {
		return 0, err
	}
	var n uint64
	for _, v := range per {
		n += v
	}
	return n, nil
}

// Misses returns the runs of the counter the kernel skipped (another run of
// it was in progress on the CPU): transitions it did not count.
func (c *Counter) Misses() (uint64, error) {
	s, err := c.objs.CountTransition.Stats()
	if err != nil {
		return 0, err
	}
	return s.RecursionMisses, nil
}

// Stats returns the counter's run count and run time (with
// kernel.bpf_stats_enabled): the cost of the cheapest observer of every
// transition, for the benchmark's floor.
func (c *Counter) Stats() (runs, ns uint64, err error) {
	s, err := c.objs.CountTransition.Stats()
	if err != nil {
		return 0, 0, err
	}
	return s.RunCount, uint64(s.Runtime), nil
}

// Close detaches the counter.
func (c *Counter) Close() {
	c.lnk.Close()
	c.objs.Close()
}
