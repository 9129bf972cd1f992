package main

import "testing"

func TestFloorRel(t *testing.T) {
	for _, tc := range []struct {
		ratio, ring float64
		over, lost  string
	}{
		{0.80, 0.95, "0.84", "4.0"}, // loses 20% where the floor loses 5%
		{0.95, 0.95, "1.00", "1.0"},
		{0.90, 1.02, "0.88", ""}, // the floor measured above untraced: no multiple
		{0.90, 0, "", ""},        // the floor did not run
		{1.10, 0.95, "1.16", ""}, // above untraced: nothing lost
	} {
		over, lost := floorRel(tc.ratio, tc.ring)
		if over != tc.over || lost != tc.lost {
			t.Errorf("floorRel(%v, %v) = %q, %q; want %q, %q", tc.ratio, tc.ring, over, lost, tc.over, tc.lost)
		}
	}
}

const abReport = `Server Software:        nginx/1.22.1
Concurrency Level:      16
Time taken for tests:   2.125 seconds
Complete requests:      30000
Failed requests:        3
Non-2xx responses:      2
Requests per second:    14117.65 [#/sec] (mean)
`

func TestParseAB(t *testing.T) {
	r, err := parseAB(abReport, 30000)
	if err != nil {
		t.Fatal(err)
	}
	if r.ConnPerSec != 14117.65 || r.Connections != 30000 || r.ErrorsTotal != 5 || r.Elapsed != 2.125 {
		t.Errorf("parseAB = %+v", r)
	}
	if _, err := parseAB(abReport, 40000); err == nil {
		t.Error("a run that completed 30000 of 40000 requests parsed without error")
	}
	if _, err := parseAB("apr_socket_recv: Connection reset by peer (104)\n", 30000); err == nil {
		t.Error("a report without a rate parsed without error")
	}
}
