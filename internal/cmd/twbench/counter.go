package main

import (
	"fmt"

	"github.com/cilium/ebpf/link"
)

// counter is the independent in-kernel count of TCP transitions.
type counter struct {
	objs benchcountObjects
	lnk  link.Link
}

func openCounter() (*counter, error) {
	c := &counter{}
	if err := loadBenchcountObjects(&c.objs, nil); err != nil {
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

// read returns the transitions counted so far.
func (c *counter) read() (uint64, error) {
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

func (c *counter) Close() {
	c.lnk.Close()
	c.objs.Close()
}
