package deploy_test

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/twtrace/twtrace/internal/sample"
	"github.com/twtrace/twtrace/tracer/kstat"
	"github.com/twtrace/twtrace/tracer/metrics"
	"github.com/twtrace/twtrace/tracer/table"
)

type dashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
			IncludeAll bool            `json:"includeAll"`
			Multi      bool            `json:"multi"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int    `json:"id"`
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		GridPos struct{ X, Y, W, H int } `json:"gridPos"`
		Targets []struct {
			Expr         string `json:"expr"`
			LegendFormat string `json:"legendFormat"`
			RefID        string `json:"refId"`
		} `json:"targets"`
	} `json:"panels"`
}

// exported gathers what serve exports for a sample stream: metric family →
// its label names (Prometheus adds instance and job at the scrape).
func exported(t *testing.T) map[string][]string {
	t.Helper()
	kr, err := kstat.NewReader("../tracer/kstat/testdata/proc")
	if err != nil {
		t.Fatal(err)
	}
	tab := table.New(table.Config{Derive: true})
	x := metrics.New(metrics.Config{Table: tab, Kernel: kr, Build: metrics.ReadBuildInfo()})
	evs := sample.Events()
	_ = x.Observe(append(evs, tab.ApplyBatch(evs, nil)...))
	mfs, err := metrics.Registry(x).Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, mf := range mfs {
		labels := []string{"instance", "job"}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName())
			}
		}
		name := mf.GetName()
		out[name] = sortedSet(labels)
		if mf.GetType().String() == "HISTOGRAM" {
			out[name+"_bucket"] = sortedSet(append(labels, "le"))
			out[name+"_sum"], out[name+"_count"] = out[name], out[name]
		}
	}
	return out
}

var (
	metricRef  = regexp.MustCompile(`\b((?:twtrace|process|go)_[a-z0-9_]+)\b(\{[^}]*\})?`)
	matcher    = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"`)
	grouping   = regexp.MustCompile(`\b(?:by|without|on|ignoring)\s*\(([^)]*)\)`)
	legendRef  = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)
	hostFilter = `instance=~"$host"`
)

func TestDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana/twtrace.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("twtrace.json: %v", err)
	}
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 || len(d.Panels) == 0 {
		t.Fatalf("uid %q, title %q, schemaVersion %d, %d panels", d.UID, d.Title, d.SchemaVersion, len(d.Panels))
	}
	have := exported(t)
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		if v.Name == "datasource" && (v.Type != "datasource" || string(v.Query) != `"prometheus"`) {
			t.Errorf("the datasource variable is %s %s", v.Type, v.Query)
		}
		if v.Name == "host" {
			m := regexp.MustCompile(`label_values\((\w+), (\w+)\)`).FindStringSubmatch(v.Definition)
			if v.Type != "query" || m == nil || !slices.Contains(have[m[1]], m[2]) || !v.Multi || !v.IncludeAll {
				t.Errorf("the host variable: %s %q", v.Type, v.Definition)
			}
		}
	}
	if !vars["datasource"] || !vars["host"] {
		t.Fatalf("variables %v, want datasource and host", vars)
	}

	queried := map[string]bool{}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		where := p.Title
		if p.Title == "" || p.Type == "" || ids[p.ID] || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %d %q: a title, a type, its own id and the datasource variable", p.ID, p.Title)
		}
		ids[p.ID] = true
		if g := p.GridPos; g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("%s: gridPos %+v", where, g)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no query", where)
		}
		refs := map[string]bool{}
		for _, q := range p.Targets {
			if q.RefID == "" || refs[q.RefID] {
				t.Errorf("%s: refId %q missing or repeated", where, q.RefID)
			}
			refs[q.RefID] = true
			checkQuery(t, where, q.Expr, q.LegendFormat, have, queried)
		}
	}
	// What the issue asks the dashboard to show.
	for _, m := range []string{"twtrace_timewait_sockets", "twtrace_syscall_failures_total", "twtrace_transitions_total",
		"twtrace_ephemeral_port_use_ratio", "twtrace_events_lost_total"} {
		if !queried[m] {
			t.Errorf("no panel queries %s", m)
		}
	}
}

// checkQuery checks one PromQL expression: the metrics it names exist, the
// labels it matches, groups by and shows exist on them, and it is limited
// to the chosen hosts.
func checkQuery(t *testing.T, where, expr, legend string, have map[string][]string, queried map[string]bool) {
	t.Helper()
	refs := metricRef.FindAllStringSubmatch(expr, -1)
	if len(refs) == 0 {
		t.Errorf("%s: %q queries no metric of twtrace", where, expr)
		return
	}
	var all []string // the labels of every metric the query names
	for _, r := range refs {
		labels, ok := have[r[1]]
		if !ok {
			t.Errorf("%s: %s is not exported", where, r[1])
			continue
		}
		queried[r[1]] = true
		all = append(all, labels...)
		for _, m := range matcher.FindAllStringSubmatch(r[2], -1) {
			if !slices.Contains(labels, m[1]) {
				t.Errorf("%s: %s has no label %s", where, r[1], m[1])
			}
		}
		if strings.HasPrefix(r[1], "twtrace_") && !strings.Contains(r[2], hostFilter) {
			t.Errorf("%s: %s is not limited to %s", where, r[1], hostFilter)
		}
	}
	for _, g := range grouping.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(g[1], ",") {
			if l = strings.TrimSpace(l); l != "" && !slices.Contains(all, l) {
				t.Errorf("%s: groups by %s, which %q does not have", where, l, expr)
			}
		}
	}
	for _, l := range legendRef.FindAllStringSubmatch(legend, -1) {
		if !slices.Contains(all, l[1]) {
			t.Errorf("%s: the legend shows %s, which %q does not have", where, l[1], expr)
		}
	}
}
