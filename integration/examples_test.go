package integration

// The examples under examples/ are part of the contract: every Caddyfile
// must adapt (and match its golden JSON in testdata/examples/), and every
// README's walk-through must still produce the responses it shows.
//
// A README's walk-through is the part under its "## Walk-through" heading.
// Its ```sh blocks run in order, in one bash session, from a copy of the
// repository root (examples/<name>/ with its ports moved to free ones, and
// ./licensegate being the binary built by TestMain) while the example's
// Caddyfile is running. A ```sh block followed directly by an ```http,
// ```json or ```text block is a step: its output must be what that block
// shows. ```http is the output of `curl -i`: the status line, the headers
// that matter (see shownHeaders) and the body; ```json is compared as JSON;
// ```text as text. The "iat" of a reject body, and Retry-After within a few
// seconds, may differ.
//
//	go test ./integration -run 'Example|Quickstart' -update
//
// rewrites the golden files and the READMEs' expected blocks from what the
// examples answer now (review the diff).

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/licensegate/licensegate/internal/testredis"
)

func init() {
	// -update may also be defined by another test file of this package.
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files and README expected blocks from the current output")
	}
}

// updating reports whether -update was given.
func updating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

const examplesDir = "../examples"

// exampleNames lists the example folders that hold a Caddyfile.
func exampleNames(t testing.TB) []string {
	t.Helper()
	entries, err := os.ReadDir(examplesDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(examplesDir, e.Name(), "Caddyfile")); e.IsDir() && err == nil {
			names = append(names, e.Name())
		}
	}
	if len(names) < 6 {
		t.Fatalf("found only %d examples: %v", len(names), names)
	}
	return names
}

// TestExamplesAdapt adapts every examples/*/Caddyfile (and any other
// *.Caddyfile there) with the binary, compares the JSON with its golden file
// and validates the config (provisioning every module) from a copy of the
// repository root, with the environment the README exports.
func TestExamplesAdapt(t *testing.T) {
	t.Parallel()
	for _, name := range exampleNames(t) {
		files, _ := filepath.Glob(filepath.Join(examplesDir, name, "*.Caddyfile"))
		files = append([]string{filepath.Join(examplesDir, name, "Caddyfile")}, files...)
		for _, file := range files {
			golden := name
			if base := filepath.Base(file); base != "Caddyfile" {
				golden += "-" + strings.TrimSuffix(base, ".Caddyfile")
			}
			t.Run(golden, func(t *testing.T) {
				t.Parallel()
				src, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				out, err := AdaptCaddyfile(t, string(src))
				if err != nil {
					t.Fatalf("adapt %s: %v\n%s", file, err, out)
				}
				cfg, warnings := splitAdaptOutput(t, out)
				// file_server hides the adapted file, named by its temporary path.
				cfg = adaptedPathRE.ReplaceAll(cfg, []byte(`"<Caddyfile>"`))
				if len(warnings) > 0 {
					t.Errorf("adapt %s warns:\n%s", file, strings.Join(warnings, "\n"))
				}
				if filepath.Base(file) == "Caddyfile" && !bytes.Contains(cfg, []byte(`"handler":"license_gate"`)) {
					t.Errorf("adapted %s has no license_gate handler:\n%s", file, cfg)
				}
				var pretty bytes.Buffer
				if err := json.Indent(&pretty, cfg, "", "\t"); err != nil {
					t.Fatal(err)
				}
				pretty.WriteByte('\n')
				goldenPath := filepath.Join("testdata", "examples", golden+".json")
				if updating() {
					if err := os.MkdirAll(filepath.Dir(goldenPath), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(goldenPath, pretty.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(goldenPath)
				if err != nil {
					t.Fatalf("%v (run with -update to create it)", err)
				}
				if !bytes.Equal(want, pretty.Bytes()) {
					t.Errorf("adapted %s differs from %s (run with -update and review the diff):\n%s",
						file, goldenPath, lineDiff(string(want), pretty.String()))
				}

				// Validate: provisions the gate (key files, secret, store).
				readme, _ := os.ReadFile(filepath.Join(examplesDir, name, "README.md"))
				root := exMirror(t, name, nil)
				rel := filepath.ToSlash(filepath.Join("examples", name, filepath.Base(file)))
				cmd := exec.Command(binPath, "validate", "--config", rel, "--adapter", "caddyfile")
				cmd.Dir = root.dir
				cmd.Env = exEnv(root.dir, readmeExports(string(readme)))
				vout, err := cmd.CombinedOutput()
				if err != nil || !bytes.Contains(vout, []byte("Valid configuration")) {
					t.Errorf("validate %s: %v\n%s", rel, err, tail(string(vout), 3000))
				}
			})
		}
	}
}

var adaptedPathRE = regexp.MustCompile(`"/[^"]*/Caddyfile"`)

// splitAdaptOutput separates the adapted config from log lines (warnings)
// in the combined output of `adapt`.
func splitAdaptOutput(t testing.TB, out string) (cfg []byte, warnings []string) {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			warnings = append(warnings, line)
			continue
		}
		if _, isLog := m["level"]; isLog {
			warnings = append(warnings, line)
			continue
		}
		if cfg != nil {
			t.Fatalf("adapt printed two configs:\n%s", out)
		}
		cfg = []byte(line)
	}
	if cfg == nil {
		t.Fatalf("adapt printed no config:\n%s", out)
	}
	return cfg, warnings
}

// lineDiff shows the first differing lines of two texts.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want %q\n  got  %q\n", i+1, wl, gl)
			if shown++; shown == 10 {
				b.WriteString("...\n")
				break
			}
		}
	}
	return b.String()
}

// ---- a running copy of an example ----

// exPorts moves an example's ports to free ones: every localhost:<port>,
// 127.0.0.1:<port> and http_port <port> in its files and README.
type exPorts struct {
	to   map[string]string // original -> free
	from map[string]string // free -> original
}

var exPortRE = regexp.MustCompile(`\b(localhost|127\.0\.0\.1):(\d{2,5})\b|\b(http_port) (\d{2,5})\b`)

// newExPorts maps every port found in texts to a free port, or to the port
// given in preset.
func newExPorts(t testing.TB, preset map[string]int, texts ...string) *exPorts {
	t.Helper()
	p := &exPorts{to: map[string]string{}, from: map[string]string{}}
	for orig, port := range preset {
		p.to[orig], p.from[strconv.Itoa(port)] = strconv.Itoa(port), orig
	}
	for _, s := range texts {
		for _, m := range exPortRE.FindAllStringSubmatch(s, -1) {
			orig := m[2] + m[4]
			if _, ok := p.to[orig]; ok {
				continue
			}
			free := strconv.Itoa(freePort(t))
			for p.from[free] != "" {
				free = strconv.Itoa(freePort(t))
			}
			p.to[orig], p.from[free] = free, orig
		}
	}
	return p
}

func (p *exPorts) apply(s string, m map[string]string) string {
	return exPortRE.ReplaceAllStringFunc(s, func(match string) string {
		sub := exPortRE.FindStringSubmatch(match)
		host, sep, port := sub[1], ":", sub[2]
		if sub[3] != "" {
			host, sep, port = sub[3], " ", sub[4]
		}
		if n, ok := m[port]; ok {
			port = n
		}
		return host + sep + port
	})
}

// rewrite moves original ports to the free ones; restore moves them back.
func (p *exPorts) rewrite(s string) string {
	if p == nil {
		return s
	}
	return p.apply(s, p.to)
}

func (p *exPorts) restore(s string) string {
	if p == nil {
		return s
	}
	return p.apply(s, p.from)
}
func (p *exPorts) port(orig string) string { return p.to[orig] }

// exRoot is a temporary copy of the repository root holding one example.
type exRoot struct {
	dir   string
	name  string
	ports *exPorts
}

// exMirror copies examples/<name>/ into a temporary root with its ports
// rewritten, and links ./licensegate to the binary.
func exMirror(t testing.TB, name string, ports *exPorts) *exRoot {
	t.Helper()
	root := &exRoot{dir: t.TempDir(), name: name, ports: ports}
	src := filepath.Join(examplesDir, name)
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		dst := filepath.Join(root.dir, "examples", name, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, []byte(ports.rewrite(string(b))), 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(binPath, filepath.Join(root.dir, "licensegate")); err != nil {
		t.Fatal(err)
	}
	// curl reads this: no request may hang the test.
	if err := os.WriteFile(filepath.Join(root.dir, ".curlrc"), []byte("max-time = 20\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return root
}

// exEnv is the environment for processes run in root: no proxies, HOME
// (Caddy's storage, curl's .curlrc) inside root, plus extra.
func exEnv(root string, extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch strings.ToLower(name) {
		case "http_proxy", "https_proxy", "all_proxy", "no_proxy", "home", "curl_home", "xdg_data_home", "xdg_config_home":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "HOME="+root, "CURL_HOME="+root, "XDG_DATA_HOME="+root, "XDG_CONFIG_HOME="+root, "NO_PROXY=*", "no_proxy=*")
	return append(env, extra...)
}

var exportRE = regexp.MustCompile(`(?m)^export ([A-Za-z_][A-Za-z0-9_]*)=(\S+)$`)

// readmeExports returns the NAME=value pairs a README exports.
func readmeExports(readme string) []string {
	var env []string
	for _, m := range exportRE.FindAllStringSubmatch(readme, -1) {
		env = append(env, m[1]+"="+strings.Trim(m[2], `'"`))
	}
	return env
}

// exGateway is the example's Caddyfile running in its root.
type exGateway struct {
	logs *syncBuffer
}

// start runs examples/<name>/Caddyfile from the root and waits until the
// port given (an original port of the example) accepts connections.
func (r *exRoot) start(t testing.TB, env []string, waitPort string) *exGateway {
	t.Helper()
	g := &exGateway{logs: &syncBuffer{}}
	runBinary(t, r.name, r.dir, []string{"run", "--config", "examples/" + r.name + "/Caddyfile"},
		exEnv(r.dir, env), g.logs, "127.0.0.1:"+r.ports.port(waitPort), nil)
	return g
}

// url is http://<host>:<free port> for an original port of the example.
func (r *exRoot) url(host, origPort string) string {
	return "http://" + host + ":" + r.ports.port(origPort)
}

// mint runs license-token in the root with the given arguments.
func (r *exRoot) mint(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(binPath, append([]string{"license-token"}, args...)...)
	cmd.Dir = r.dir
	cmd.Env = exEnv(r.dir, nil)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("license-token %v: %v\n%s", args, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// ---- README walk-throughs ----

// exBlock is one fenced code block of a README.
type exBlock struct {
	lang       string
	body       string
	start, end int // lines of the body: [start, end)
}

// exStep is a walk-through command block and the output it must give.
type exStep struct {
	cmd      exBlock
	expected *exBlock
}

// readmeBlocks returns the fenced blocks under "## Walk-through".
func readmeBlocks(t testing.TB, lines []string) []exBlock {
	t.Helper()
	in, found := false, false
	var blocks []exBlock
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.HasPrefix(l, "## ") {
			in = strings.TrimSpace(l) == "## Walk-through"
			found = found || in
			continue
		}
		if !in || !strings.HasPrefix(l, "```") {
			continue
		}
		b := exBlock{lang: strings.TrimSpace(strings.TrimPrefix(l, "```")), start: i + 1}
		for i++; i < len(lines) && !strings.HasPrefix(lines[i], "```"); i++ {
		}
		b.end = i
		b.body = strings.Join(lines[b.start:b.end], "\n")
		blocks = append(blocks, b)
	}
	if !found {
		t.Fatal(`README has no "## Walk-through" section`)
	}
	return blocks
}

// walkSteps pairs each ```sh block with the output block right after it.
func walkSteps(t testing.TB, lines []string) []exStep {
	t.Helper()
	blocks := readmeBlocks(t, lines)
	var steps []exStep
	for i := 0; i < len(blocks); i++ {
		b := blocks[i]
		if b.lang != "sh" {
			t.Fatalf("README line %d: a ```%s block without a ```sh block before it", b.start, b.lang)
		}
		s := exStep{cmd: b}
		if i+1 < len(blocks) && blocks[i+1].lang != "sh" {
			next := blocks[i+1]
			between := strings.TrimSpace(strings.Join(lines[b.end+1:next.start-1], "\n"))
			if between != "" {
				t.Fatalf("README line %d: text between a command and its output block", b.end+1)
			}
			switch next.lang {
			case "http", "json", "text":
			default:
				t.Fatalf("README line %d: unknown output block ```%s", next.start, next.lang)
			}
			s.expected = &next
			i++
		}
		steps = append(steps, s)
	}
	return steps
}

const stepMarker = "@@licensegate-walkthrough-step@@"

// runWalkthrough runs the README's walk-through against the running
// example and checks (or, with -update, rewrites) every output block.
func runWalkthrough(t *testing.T, r *exRoot, env []string) {
	t.Helper()
	readmePath := filepath.Join(examplesDir, r.name, "README.md")
	raw, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	if !strings.Contains(readme, "run --config examples/"+r.name+"/Caddyfile") {
		t.Errorf("README does not say how to run examples/%s/Caddyfile", r.name)
	}
	lines := strings.Split(readme, "\n")
	steps := walkSteps(t, lines)

	var script strings.Builder
	script.WriteString("cd " + strconv.Quote(r.dir) + "\n")
	for _, s := range steps {
		script.WriteString(r.ports.rewrite(s.cmd.body))
		script.WriteString("\nprintf '\\n%s\\n' '" + stepMarker + "'\n")
	}
	cmd := exec.Command("bash", "-c", script.String())
	cmd.Dir = r.dir
	cmd.Env = exEnv(r.dir, env)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("walk-through script: %v\n%s\n%s", err, out, stderr.String())
	}
	outputs := strings.Split(string(out), "\n"+stepMarker+"\n")
	if len(outputs) != len(steps)+1 {
		t.Fatalf("walk-through printed %d step outputs, want %d:\n%s\n%s", len(outputs)-1, len(steps), out, stderr.String())
	}
	checked := 0
	for i, s := range steps {
		if s.expected == nil {
			continue
		}
		checked++
		got := outputs[i]
		if updating() {
			formatted := r.ports.restore(formatOutput(t, s.expected.lang, got))
			newBody := strings.Split(formatted, "\n")
			// Replace the block's lines (bottom-up keeps earlier positions).
			defer func(b exBlock) {
				lines = append(lines[:b.start], append(newBody, lines[b.end:]...)...)
			}(*s.expected)
			continue
		}
		want := r.ports.rewrite(s.expected.body)
		if msg := compareOutput(s.expected.lang, want, got); msg != "" {
			t.Errorf("README line %d, step\n%s\n%s\n--- got:\n%s", s.cmd.start, s.cmd.body, msg, got)
		}
	}
	if checked < 2 {
		t.Errorf("walk-through checks only %d outputs", checked)
	}
	if updating() {
		t.Cleanup(func() {
			if err := os.WriteFile(readmePath, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
				t.Error(err)
			}
		})
	}
	if t.Failed() {
		t.Logf("walk-through stderr:\n%s", tail(stderr.String(), 4000))
	}
}

// curlResponse is `curl -i` output.
type curlResponse struct {
	status  string
	headers [][2]string
	body    string
}

func parseCurl(out string) (*curlResponse, error) {
	out = strings.TrimLeft(out, "\n")
	head, body, ok := strings.Cut(out, "\r\n\r\n")
	if !ok {
		head, body, ok = strings.Cut(out, "\n\n")
	}
	if !ok || !strings.HasPrefix(head, "HTTP/") {
		return nil, fmt.Errorf("not curl -i output")
	}
	lines := strings.Split(strings.ReplaceAll(head, "\r\n", "\n"), "\n")
	r := &curlResponse{status: strings.TrimSpace(lines[0]), body: strings.TrimSpace(strings.ReplaceAll(body, "\r\n", "\n"))}
	for _, l := range lines[1:] {
		name, value, _ := strings.Cut(l, ":")
		r.headers = append(r.headers, [2]string{strings.TrimSpace(name), strings.TrimSpace(value)})
	}
	return r, nil
}

// shownHeaders are the headers a README shows: the ones the gate is about.
func shownHeaders(r *curlResponse) [][2]string {
	var out [][2]string
	for _, h := range r.headers {
		switch strings.ToLower(h[0]) {
		case "cache-control", "retry-after", "www-authenticate", "x-license-credits-limit", "x-license-credits-remaining":
		case "content-type":
			if !strings.HasPrefix(h[1], "application/json") {
				continue
			}
		default:
			continue
		}
		out = append(out, h)
	}
	return out
}

var iatRE = regexp.MustCompile(`"iat": ?\d+`)

// formatOutput renders actual output as the README shows it.
func formatOutput(t testing.TB, lang, got string) string {
	t.Helper()
	switch lang {
	case "http":
		r, err := parseCurl(got)
		if err != nil {
			t.Fatalf("%v:\n%s", err, got)
		}
		var b strings.Builder
		b.WriteString(r.status + "\n")
		for _, h := range shownHeaders(r) {
			b.WriteString(h[0] + ": " + h[1] + "\n")
		}
		if r.body != "" {
			b.WriteString("\n" + r.body + "\n")
		}
		return strings.TrimSuffix(b.String(), "\n")
	case "json":
		var buf bytes.Buffer
		if err := json.Indent(&buf, []byte(strings.TrimSpace(got)), "", "  "); err != nil {
			t.Fatalf("output is not JSON: %v:\n%s", err, got)
		}
		return buf.String()
	}
	return strings.TrimSpace(got)
}

// compareOutput returns "" when got is what the README shows.
func compareOutput(lang, want, got string) string {
	switch lang {
	case "http":
		r, err := parseCurl(got)
		if err != nil {
			return err.Error()
		}
		w, err := parseCurl(strings.ReplaceAll(want, "\n", "\r\n"))
		if err != nil {
			// A response with no body: the block is only status and headers.
			w, err = parseCurl(strings.ReplaceAll(want+"\n\n", "\n", "\r\n"))
			if err != nil {
				return "README block: " + err.Error()
			}
		}
		var msgs []string
		if w.status != r.status {
			msgs = append(msgs, fmt.Sprintf("status %q, README shows %q", r.status, w.status))
		}
		gh := shownHeaders(r)
		if len(gh) != len(w.headers) {
			msgs = append(msgs, fmt.Sprintf("headers %q, README shows %q", gh, w.headers))
		} else {
			for i := range gh {
				if !strings.EqualFold(gh[i][0], w.headers[i][0]) || !sameHeaderValue(gh[i][0], gh[i][1], w.headers[i][1]) {
					msgs = append(msgs, fmt.Sprintf("header %s: %q, README shows %s: %q", gh[i][0], gh[i][1], w.headers[i][0], w.headers[i][1]))
				}
			}
		}
		if iatRE.ReplaceAllString(r.body, `"iat": 0`) != iatRE.ReplaceAllString(w.body, `"iat": 0`) {
			msgs = append(msgs, fmt.Sprintf("body differs; README shows:\n%s", w.body))
		}
		return strings.Join(msgs, "\n")
	case "json":
		var gv, wv any
		if err := json.Unmarshal([]byte(got), &gv); err != nil {
			return "output is not JSON: " + err.Error()
		}
		if err := json.Unmarshal([]byte(want), &wv); err != nil {
			return "README block is not JSON: " + err.Error()
		}
		if !reflect.DeepEqual(gv, wv) {
			return "JSON differs; README shows:\n" + want
		}
		return ""
	}
	if strings.TrimSpace(got) != strings.TrimSpace(want) {
		return "output differs; README shows:\n" + want
	}
	return ""
}

// sameHeaderValue compares header values; Retry-After counts down, so a
// few seconds either way are the same.
func sameHeaderValue(name, got, want string) bool {
	if strings.EqualFold(name, "Retry-After") {
		g, err1 := strconv.Atoi(got)
		w, err2 := strconv.Atoi(want)
		return err1 == nil && err2 == nil && g >= w-10 && g <= w+10
	}
	return got == want
}

// ---- the examples' walk-throughs ----

// runExample copies an example, starts it and runs its README walk-through.
// preset maps original ports to ports already in use by the test's own
// servers; waitPort is the API port to wait for.
func runExample(t *testing.T, name, waitPort string, preset map[string]int, ready func(r *exRoot)) *exRoot {
	t.Helper()
	var texts []string
	_ = filepath.WalkDir(filepath.Join(examplesDir, name), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(path)
			texts = append(texts, string(b))
		}
		return nil
	})
	readme, err := os.ReadFile(filepath.Join(examplesDir, name, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	ports := newExPorts(t, preset, texts...)
	r := exMirror(t, name, ports)
	env := readmeExports(string(readme))
	r.start(t, env, waitPort)
	if ready != nil {
		ready(r)
	}
	runWalkthrough(t, r, env)
	return r
}

func TestExampleTenDuke(t *testing.T) {
	t.Parallel()
	runExample(t, "tenduke", "8100", nil, nil)
}

func TestExampleData8(t *testing.T) {
	t.Parallel()
	runExample(t, "data8", "8200", nil, nil)
}

func TestExampleAxes4(t *testing.T) {
	t.Parallel()
	runExample(t, "axes4", "8300", nil, nil)
}

// TestExampleIssuer runs the issuer example: one Caddy that issues axes4
// and Data8 tokens and enforces them through oidc_issuer.
func TestExampleIssuer(t *testing.T) {
	t.Parallel()
	runExample(t, "issuer", "8600", nil, nil)
}

// TestExampleOIDC serves the stand-in realm's discovery document and keys
// from a loopback test server in place of Keycloak, runs the README's
// walk-through, and checks a Keycloak-like at+jwt access token passes and
// an expired one gets 401 licenseExpired.
func TestExampleOIDC(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	realmPort := l.Addr().(*net.TCPAddr).Port
	files := map[string]string{
		"/realms/demo/.well-known/openid-configuration": "openid-configuration.json",
		"/realms/demo/protocol/openid-connect/certs":    "certs.json",
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		name, ok := files[req.URL.Path]
		if !ok {
			http.NotFound(w, req)
			return
		}
		b, err := os.ReadFile(filepath.Join(examplesDir, "oidc", "realm", name))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		// The realm's URLs name this server's port.
		b = bytes.ReplaceAll(b, []byte("localhost:8180/"), []byte(fmt.Sprintf("localhost:%d/", realmPort)))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	}))
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)

	r := runExample(t, "oidc", "8400", map[string]int{"8180": realmPort}, func(r *exRoot) {
		// The gate loads the realm's keys in the background: wait until a
		// token is judged on its merits (not 503, no keys yet).
		expired := r.mint(t, "--key", "examples/oidc/demo.private.jwk.json", "--typ", "at+jwt",
			"--iss", r.ports.rewrite("http://localhost:8180/realms/demo"), "--aud", "licensegate-api", "--exp=-1h")
		WaitFor(t, 20*time.Second, "the realm's keys to load", func() bool {
			req, _ := http.NewRequest(http.MethodGet, r.url("localhost", "8400")+"/", nil)
			req.Header.Set("Authorization", "Bearer "+expired)
			resp, err := httpClient.Do(req)
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode != http.StatusServiceUnavailable
		})
	})

	iss := r.ports.rewrite("http://localhost:8180/realms/demo")
	access := func(extra ...string) string {
		args := []string{"--key", "examples/oidc/demo.private.jwk.json", "--typ", "at+jwt",
			"--iss", iss, "--sub", "5f1c2b7e-8d7a-4c1e-9a55-0c4f3e2d1b6a",
			"--aud", "licensegate-api", "--aud", "account",
			"--claim", "azp=demo-cli", "--claim", "scope=openid profile email",
			"--claim", "preferred_username=alice", "--claim", "typ=Bearer"}
		return r.mint(t, append(args, extra...)...)
	}
	get := func(token string) (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodGet, r.url("localhost", "8400")+"/reports", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		return Do(t, req)
	}

	tok := access("--exp", "5m")
	if h := tokenPart(t, tok, 0); h["typ"] != "at+jwt" || h["alg"] != "RS256" || h["kid"] != "keycloak-demo" {
		t.Errorf("access token header %v", h)
	}
	resp, body := get(tok)
	if resp.StatusCode != http.StatusOK || string(body) != "hello alice (user 5f1c2b7e-8d7a-4c1e-9a55-0c4f3e2d1b6a)\n" {
		t.Errorf("at+jwt access token: %d %q", resp.StatusCode, body)
	}
	resp, body = get(access("--iat=-6m", "--exp=-1m"))
	rb := AssertReject(t, resp, body, http.StatusUnauthorized, "licenseExpired", "")
	if rb.Technical != "token expired" {
		t.Errorf("expired access token: %q", rb.Technical)
	}
}

func TestExampleRedisCluster(t *testing.T) {
	t.Parallel()
	addrs := testredis.StartCluster(t, 3)
	preset := map[string]int{}
	for i, a := range addrs {
		_, port, _ := net.SplitHostPort(a)
		p, _ := strconv.Atoi(port)
		preset[strconv.Itoa(7001+i)] = p
	}
	runExample(t, "redis-cluster", "8500", preset, nil)
}

// ---- the quickstart of README.md ----

// TestQuickstartWalkthrough runs examples/quickstart as the repository
// README's walk-through does: the same license-token commands, and the
// responses it promises.
func TestQuickstartWalkthrough(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(readme)
	if i := strings.Index(section, "\n## Quickstart"); i >= 0 {
		section = section[i+1:]
		if j := strings.Index(section[3:], "\n## "); j >= 0 {
			section = section[:j+3]
		}
	} else {
		t.Fatal("README.md has no Quickstart section")
	}
	keyLine := regexp.MustCompile(`(?m)^KEY=(\S+)$`).FindStringSubmatch(section)
	if keyLine == nil || keyLine[1] != "examples/quickstart/demo.private.jwk.json" {
		t.Fatalf("the Quickstart does not set KEY=examples/quickstart/demo.private.jwk.json: %v", keyLine)
	}
	mints := regexp.MustCompile(`(?m)^TOKEN=\$\(\./licensegate (license-token [^)]*)\)$`).FindAllStringSubmatch(section, -1)
	if len(mints) != 3 {
		t.Fatalf("the Quickstart mints %d tokens, this test knows 3 (allowed, expired, wrong item)", len(mints))
	}
	for _, promise := range []string{
		"X-License-Credits-Limit: 3", "X-License-Credits-Remaining: 2",
		`"axesWord_errorCode": "licenseExpired"`, `error_description="token expired"`,
		`"axesWord_errorCode": "noLicenseFound"`, "item axesWord is not licensed by this token",
		"maxUseCountExceed", "http://localhost:8080/",
	} {
		if !strings.Contains(section, promise) {
			t.Errorf("the Quickstart no longer shows %q; update this test", promise)
		}
	}

	caddyfile, err := os.ReadFile(filepath.Join(examplesDir, "quickstart", "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"admin localhost:2019", "http_port 8080", "http://localhost:8080", "localhost:8081", "jwks_file examples/quickstart/jwks.json"} {
		if !strings.Contains(string(caddyfile), want) {
			t.Fatalf("examples/quickstart/Caddyfile lacks %q; update this test", want)
		}
	}
	ports := newExPorts(t, nil, string(caddyfile))
	r := exMirror(t, "quickstart", ports)
	r.start(t, nil, "8080")

	// The README's own command lines, run by bash in the root.
	mint := func(i int) string {
		t.Helper()
		cmd := exec.Command("bash", "-c", "KEY="+keyLine[1]+"\nTOKEN=$(./licensegate "+mints[i][1]+")\nprintf %s \"$TOKEN\"")
		cmd.Dir = r.dir
		cmd.Env = exEnv(r.dir, nil)
		out, err := cmd.CombinedOutput()
		if err != nil || strings.Count(string(out), ".") != 2 {
			t.Fatalf("%s: %v\n%s", mints[i][1], err, out)
		}
		return string(out)
	}
	get := func(token string) (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodGet, r.url("localhost", "8080")+"/", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		return Do(t, req)
	}

	allowed := mint(0)
	jti, _ := tokenPart(t, allowed, 1)["jti"].(string)
	if jti == "" {
		t.Fatalf("allowed token has no jti")
	}
	resp, body := get(allowed)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("allowed: %d %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("X-License-Credits-Remaining"); got != "2" {
		t.Errorf("X-License-Credits-Remaining %q, want 2", got)
	}
	if got := resp.Header.Get("X-License-Credits-Limit"); got != "3" {
		t.Errorf("X-License-Credits-Limit %q, want 3", got)
	}
	if want := "hello alice, license " + jti + " accepted\n"; string(body) != want {
		t.Errorf("upstream said %q, want %q", body, want)
	}

	resp, body = get(mint(1))
	rb := AssertReject(t, resp, body, http.StatusUnauthorized, "licenseExpired", "axesWord")
	if wa := resp.Header.Get("WWW-Authenticate"); wa != `Bearer error="invalid_token", error_description="token expired"` {
		t.Errorf("expired: WWW-Authenticate %q", wa)
	}
	if rb.Technical != "token expired" || rb.Message != "The license has expired" {
		t.Errorf("expired: %s", body)
	}

	resp, body = get(mint(2))
	rb = AssertReject(t, resp, body, http.StatusForbidden, "noLicenseFound", "axesWord")
	if rb.Technical != "item axesWord is not licensed by this token" {
		t.Errorf("wrong item: %s", body)
	}

	// The README's loop, run by bash with the first token, prints what the
	// README shows under it.
	loop := regexp.MustCompile(`(?ms)^(for call in [^\n]*\n.*?\ndone)\n((?:# call [^\n]*\n)+)`).FindStringSubmatch(section)
	if loop == nil {
		t.Fatal("the Quickstart has no 'for call in ...' loop followed by its output")
	}
	cmd := exec.Command("bash", "-c", "TOKEN="+allowed+"\n"+r.ports.rewrite(loop[1]))
	cmd.Dir = r.dir
	cmd.Env = exEnv(r.dir, nil)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the Quickstart's loop: %v\n%s", err, out)
	}
	var want []string
	for _, l := range strings.Split(strings.TrimSpace(loop[2]), "\n") {
		want = append(want, strings.TrimPrefix(l, "# "))
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		got = append(got, strings.TrimRight(l, " "))
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the Quickstart's loop printed\n%s\nthe README shows\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The fourth call, the one the README's text describes.
	resp, body = get(allowed)
	rb = AssertReject(t, resp, body, http.StatusForbidden, "maxUseCountExceed", "axesWord")
	if rb.Technical != "used 3 of 3 credits, request costs 1" || !strings.Contains(section, `"axesWord_errorTechnical": "used 3 of 3 credits, request costs 1"`) {
		t.Errorf("credits used up: %s", body)
	}
}

// tokenPart decodes a compact JWT's header (0) or payload (1).
func tokenPart(t testing.TB, token string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWT: %q", token)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
