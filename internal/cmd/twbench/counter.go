package main

import "github.com/twtrace/twtrace/internal/kcount"

// counter is the independent in-kernel count of TCP transitions.
type counter struct{ *kcount.Counter }

func openCounter() (*counter, error) {
	c, err := kcount.Open(0, 0)
	if err != nil {
		return nil, err
	}
	return &counter{c}, nil
}

// read returns the transitions counted so far.
func (c *counter) read() (uint64, error) { return c.Read() }
