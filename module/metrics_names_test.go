package module

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// providedByIssuer are metrics that the license_issuer module
// (module/issuer) registers, not this package; the dashboard shows them
// when an issuer runs.
var providedByIssuer = map[string]bool{"licensegate_issued_total": true}

// TestDashboardAndRulesNameRealMetrics: every licensegate metric named by
// examples/monitoring (alert rules, Prometheus config, Grafana dashboard)
// is one the gate registers, histogram series included.
func TestDashboardAndRulesNameRealMetrics(t *testing.T) {
	t.Parallel()
	known := map[string]bool{}
	reg := prometheus.NewRegistry()
	if err := registerMetrics(reg); err != nil {
		t.Fatal(err)
	}
	descs := make(chan *prometheus.Desc, 64)
	for _, c := range []prometheus.Collector{requestsTotal, storeSeconds, jwksRefreshes, cacheHits,
		voidsPending, voidsDropped, blocksTaken, blocksReturned, blockRecalls, blockCreditsUnused, blockCreditsStranded} {
		c.Describe(descs)
	}
	close(descs)
	nameRE := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range descs {
		m := nameRE.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("cannot read the name of %s", d)
		}
		known[m[1]] = true
	}
	if !known["licensegate_store_seconds"] {
		t.Fatalf("registry names %v", known)
	}
	files, _ := filepath.Glob(filepath.Join("..", "examples", "monitoring", "*"))
	metricRE := regexp.MustCompile(`\blicensegate_[a-z0-9_]+`)
	seen := 0
	for _, f := range files {
		if !strings.HasSuffix(f, ".yml") && !strings.HasSuffix(f, ".json") {
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range metricRE.FindAllString(string(raw), -1) {
			seen++
			base := name
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				if b, ok := strings.CutSuffix(name, suffix); ok && known[b] {
					base = b
				}
			}
			if !known[base] && !providedByIssuer[base] {
				t.Errorf("%s names %s, which no collector registers", filepath.Base(f), name)
			}
		}
	}
	if seen < 10 {
		t.Errorf("examples/monitoring names only %d metrics", seen)
	}
}
