package metrics

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/twtrace/twtrace/internal/sample"
)

// docRow is a metric as docs/metrics.md lists it.
type docRow struct {
	typ    string
	labels []string
}

// docRows reads the table of docs/metrics.md: | `name` | type | `a`, `b` | meaning |.
func docRows(t *testing.T) map[string]docRow {
	t.Helper()
	b, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("^\\| `(twtrace_[a-z0-9_]+)` \\| (counter|gauge|histogram) \\| ([^|]*) \\|")
	label := regexp.MustCompile("`([a-z_]+)`")
	out := map[string]docRow{}
	for _, line := range strings.Split(string(b), "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		r := docRow{typ: m[2]}
		for _, l := range label.FindAllStringSubmatch(m[3], -1) {
			r.labels = append(r.labels, l[1])
		}
		out[m[1]] = r
	}
	return out
}

var descName = regexp.MustCompile(`fqName: "([^"]+)"`)
var descLabels = regexp.MustCompile(`variableLabels: \{([^}]*)\}`)

// Every metric is documented with its labels, and every documented metric
// exists; the types match what a scrape reports.
func TestDocsListEveryMetric(t *testing.T) {
	rows := docRows(t)
	all := newDescs(LabelNetNS)
	if n := len(all.all()); len(rows) != n {
		t.Errorf("docs/metrics.md's table has %d metrics, the exporter %d", len(rows), n)
	}
	for _, mode := range []LabelMode{LabelNone, LabelNetNS} {
		d := newDescs(mode)
		seen := map[string]bool{}
		for _, desc := range d.all() {
			s := desc.String()
			name := descName.FindStringSubmatch(s)[1]
			seen[name] = true
			row, ok := rows[name]
			if !ok {
				t.Errorf("%s is not in docs/metrics.md", name)
				continue
			}
			var labels []string
			if m := descLabels.FindStringSubmatch(s); m != nil && m[1] != "" {
				labels = strings.Split(m[1], ",")
			}
			labels = slices.DeleteFunc(labels, func(l string) bool { return l == "netns" })
			if !slices.Equal(labels, row.labels) {
				t.Errorf("%s: labels %v, docs/metrics.md says %v", name, labels, row.labels)
			}
		}
		if mode == LabelNetNS {
			for name := range rows {
				if !seen[name] {
					t.Errorf("docs/metrics.md lists %s, which the exporter does not have", name)
				}
			}
		}
	}
	x, tab, reg := newTest(t, Config{Label: LabelNetNS})
	feed(t, x, tab, sample.Events())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	types := map[dto.MetricType]string{dto.MetricType_COUNTER: "counter", dto.MetricType_GAUGE: "gauge", dto.MetricType_HISTOGRAM: "histogram"}
	for _, mf := range mfs {
		if r, ok := rows[mf.GetName()]; ok && r.typ != types[mf.GetType()] {
			t.Errorf("%s is a %s; docs/metrics.md says %s", mf.GetName(), types[mf.GetType()], r.typ)
		}
	}
}
