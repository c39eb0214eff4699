package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/licensegate/licensegate/internal/testredis"
)

// monitoringTool finds a Prometheus program; a missing one fails the test
// with the way to install it, never skips it.
func monitoringTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed (apt-get install -y prometheus): the monitoring example is tested with a real Prometheus", name)
	}
	return p
}

// promQuery runs an instant query on Prometheus's HTTP API.
func promQuery(t *testing.T, base, query string) []map[string]any {
	t.Helper()
	var out struct {
		Status string `json:"status"`
		Data   struct {
			Result []map[string]any `json:"result"`
		} `json:"data"`
	}
	promGet(t, base+"/api/v1/query?query="+url.QueryEscape(query), &out)
	return out.Data.Result
}

func promGet(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v: %s", u, err, body)
	}
}

// TestMonitoringWithPrometheus runs examples/monitoring for real: promtool
// accepts its rules and config, a Prometheus started from its config (with
// one-second intervals and for durations) scrapes the running gate and
// shows its series, and LicensegateStoreFailing fires while Redis is down.
func TestMonitoringWithPrometheus(t *testing.T) {
	t.Parallel()
	prometheus, promtool := monitoringTool(t, "prometheus"), monitoringTool(t, "promtool")
	dir := filepath.Join(examplesDir, "monitoring")
	for _, args := range [][]string{
		{"check", "rules", filepath.Join(dir, "alerts.yml")},
		{"check", "config", filepath.Join(dir, "prometheus.yml")},
	} {
		if out, err := exec.Command(promtool, args...).CombinedOutput(); err != nil {
			t.Fatalf("promtool %v: %v\n%s", args, err, out)
		}
	}

	// The README's PromQL is what the rules evaluate.
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, promql, _ := strings.Cut(string(readme), "```promql\n")
	promql, _, _ = strings.Cut(promql, "```")
	rules, err := os.ReadFile(filepath.Join(dir, "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(promql), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		if expr := strings.TrimSuffix(line, " > 0"); !strings.Contains(string(rules), expr) {
			t.Errorf("README's PromQL %q is not in alerts.yml", expr)
		}
	}

	// The gate, with Redis, from the example's Caddyfile.
	redis := testredis.Start(t)
	caddyfile, err := os.ReadFile(filepath.Join(dir, "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	promCfg, err := os.ReadFile(filepath.Join(dir, "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	ports := newExPorts(t, map[string]int{"6379": redis.Port()}, string(caddyfile), string(promCfg))
	r := exMirror(t, "monitoring", ports)
	r.start(t, nil, "8600")

	// Prometheus on a free port, from the example's config with short
	// intervals and a copy of the rules whose for durations are 1s.
	mdir := filepath.Join(r.dir, "examples", "monitoring")
	cfg, _ := os.ReadFile(filepath.Join(mdir, "prometheus.yml"))
	cfg = regexp.MustCompile(`(scrape|evaluation)_interval: \S+`).ReplaceAll(cfg, []byte("${1}_interval: 1s"))
	rulesCopy := regexp.MustCompile(`(?m)^(\s+)for: \S+$`).ReplaceAll(rules, []byte("${1}for: 1s"))
	for name, body := range map[string][]byte{"prometheus-test.yml": cfg, "alerts.yml": rulesCopy} {
		if err := os.WriteFile(filepath.Join(mdir, name), body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	promPort := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(promPort)
	runProgram(t, "prometheus", prometheus, mdir, []string{"--config.file=" + filepath.Join(mdir, "prometheus-test.yml"),
		"--storage.tsdb.path=" + t.TempDir(), "--web.listen-address=127.0.0.1:" + strconv.Itoa(promPort)},
		os.Environ(), &syncBuffer{}, "127.0.0.1:"+strconv.Itoa(promPort), func() (bool, error) {
			resp, err := http.Get(base + "/-/ready")
			if err != nil {
				return false, nil
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK, nil
		})

	// Requests, allowed and rejected, until Prometheus has their series.
	tok := r.mint(t, "--key", "examples/monitoring/demo.private.jwk.json", "--sub", "alice", "--credits", "100000")
	var mu sync.Mutex
	statuses := map[int]int{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			for _, token := range []string{tok, ""} {
				req, _ := http.NewRequest(http.MethodGet, r.url("localhost", "8600")+"/", nil)
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				if resp, err := httpClient.Do(req); err == nil {
					resp.Body.Close()
					mu.Lock()
					statuses[resp.StatusCode]++
					mu.Unlock()
				}
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })

	WaitFor(t, 30*time.Second, "the gate's series in Prometheus", func() bool {
		return len(promQuery(t, base, `licensegate_requests_total{job="licensegate",result="allowed"}`)) == 1 &&
			len(promQuery(t, base, `licensegate_requests_total{result="rejected",code="notAuthorized"}`)) == 1 &&
			len(promQuery(t, base, `licensegate_store_seconds_count > 0`)) == 1
	})
	if n := len(promQuery(t, base, `ALERTS{alertname="LicensegateStoreFailing"}`)); n != 0 {
		t.Errorf("LicensegateStoreFailing is active while Redis is up")
	}

	// Redis down: the gate answers 503 and the store alert fires.
	redis.Kill()
	alertState := func() string {
		var out struct {
			Data struct {
				Alerts []struct {
					Labels map[string]string `json:"labels"`
					State  string            `json:"state"`
				} `json:"alerts"`
			} `json:"data"`
		}
		promGet(t, base+"/api/v1/alerts", &out)
		for _, a := range out.Data.Alerts {
			if a.Labels["alertname"] == "LicensegateStoreFailing" {
				return a.State
			}
		}
		return ""
	}
	WaitFor(t, 60*time.Second, "LicensegateStoreFailing to fire", func() bool { return alertState() == "firing" })
	mu.Lock()
	defer mu.Unlock()
	if statuses[http.StatusServiceUnavailable] == 0 || statuses[http.StatusOK] == 0 {
		t.Errorf("statuses seen: %v", statuses)
	}
	t.Logf("statuses seen: %s", fmt.Sprint(statuses))
}
