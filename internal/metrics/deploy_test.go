package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

var metricName = regexp.MustCompile(`\bgymbro_[a-z0-9_]+`)

// registered returns every metric name the service's registry describes.
func registered(t *testing.T) map[string]bool {
	t.Helper()
	m := New(Options{OutboxStats: nil})
	ch := make(chan *prometheus.Desc, 256)
	go func() { m.reg.Describe(ch); close(ch) }()
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	names := map[string]bool{}
	for d := range ch {
		if s := fq.FindStringSubmatch(d.String()); s != nil {
			names[s[1]] = true
		}
	}
	// The outbox collector is registered only with a store to ask.
	for _, n := range []string{"gymbro_outbox_pending", "gymbro_outbox_dead", "gymbro_outbox_oldest_pending_age_seconds"} {
		names[n] = true
	}
	return names
}

// exists reports whether name, or the histogram it is a series of, is known.
func exists(names map[string]bool, name string) bool {
	for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
		if strings.HasSuffix(name, suffix) && names[strings.TrimSuffix(name, suffix)] {
			return true
		}
	}
	return false
}

// TestDashboardAndAlertsUseRealMetrics: deploy/grafana/gymbro.json is a
// Grafana dashboard whose every panel queries Prometheus, and every gymbro_
// metric it or deploy/prometheus/alerts.yml names exists in the registry.
func TestDashboardAndAlertsUseRealMetrics(t *testing.T) {
	names := registered(t)
	raw, err := os.ReadFile("../../deploy/grafana/gymbro.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title         string `json:"title"`
		UID           string `json:"uid"`
		SchemaVersion int    `json:"schemaVersion"`
		Panels        []struct {
			Title   string             `json:"title"`
			Type    string             `json:"type"`
			GridPos struct{ H, W int } `json:"gridPos"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("gymbro.json: %v", err)
	}
	if dash.Title == "" || dash.UID == "" || dash.SchemaVersion < 30 || len(dash.Panels) < 8 {
		t.Fatalf("dashboard: title %q uid %q schema %d, %d panels", dash.Title, dash.UID, dash.SchemaVersion, len(dash.Panels))
	}
	var exprs []string
	for _, p := range dash.Panels {
		if p.Title == "" || p.Type == "" || p.GridPos.H == 0 || p.GridPos.W == 0 || len(p.Targets) == 0 {
			t.Errorf("panel %q: type %q, grid %v, %d queries", p.Title, p.Type, p.GridPos, len(p.Targets))
		}
		for _, q := range p.Targets {
			exprs = append(exprs, q.Expr)
		}
	}
	alerts, err := os.ReadFile("../../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	exprs = append(exprs, string(alerts))
	used := 0
	for _, e := range exprs {
		for _, name := range metricName.FindAllString(e, -1) {
			used++
			if !exists(names, name) {
				t.Errorf("%s is used by the dashboard or the alerts but not registered", name)
			}
		}
	}
	if used == 0 {
		t.Fatal("no gymbro_ metric found in the dashboard or the alerts")
	}
}
