package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// Scrapes of serve during a run: the first once the warmup has filled the
// socket table, then every scrapeEvery, as a Prometheus scrapes.
const scrapeEvery = 15 * time.Second

// scraper scrapes a /metrics URL until stopped.
type scraper struct {
	url    string
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	n      int
	took   time.Duration // all scrapes together
	err    error
	client http.Client
}

func startScraper(url string, first time.Duration) *scraper {
	ctx, cancel := context.WithCancel(context.Background())
	s := &scraper{url: url, cancel: cancel,
		client: http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTimer(first)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			s.scrape()
			t.Reset(scrapeEvery)
		}
	}()
	return s
}

func (s *scraper) scrape() {
	began := time.Now()
	resp, err := s.client.Get(s.url)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s: %s", s.url, resp.Status)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	s.took += time.Since(began)
	if err != nil && s.err == nil {
		s.err = err
	}
}

// stop ends the scrapes and waits for one in flight, so that its
// connection's transitions happen while the tracer still counts them.
func (s *scraper) stop() (n int, took time.Duration, err error) {
	s.cancel()
	s.wg.Wait()
	s.client.CloseIdleConnections()
	time.Sleep(100 * time.Millisecond) // the last FIN exchange, on loopback
	return s.n, s.took, s.err
}
