package metrics_test

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/syncd/syncd/metrics"
)

// scrape fetches /metrics from Handler(m) and parses the text exposition
// into samples keyed by name{labels}, labels sorted by name, e.g.
// syncd_sinch_calls_total{code="200",operation="list"}.
func scrape(t *testing.T, m *metrics.Metrics) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	metrics.Handler(m, metrics.Health{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	return parseExposition(t, rec.Body.String())
}

var labelPair = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

func parseExposition(t *testing.T, text string) map[string]float64 {
	t.Helper()
	samples := make(map[string]float64)
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cut := strings.LastIndexByte(line, ' ')
		if cut < 0 {
			t.Fatalf("unparsable sample line %q", line)
		}
		v, err := strconv.ParseFloat(line[cut+1:], 64)
		if err != nil {
			t.Fatalf("sample line %q: %v", line, err)
		}
		samples[sampleKey(line[:cut])] = v
	}
	return samples
}

// sampleKey sorts the labels of name{labels}, so that keys do not depend on
// the order the encoder writes them in (it puts le last).
func sampleKey(s string) string {
	name, labels, ok := strings.Cut(s, "{")
	if !ok {
		return s
	}
	var pairs []string
	for _, m := range labelPair.FindAllStringSubmatch(labels, -1) {
		pairs = append(pairs, m[1]+`="`+m[2]+`"`)
	}
	slices.Sort(pairs)
	return name + "{" + strings.Join(pairs, ",") + "}"
}

// checkSamples compares the wanted samples, and checks that the absent ones
// are not exposed at all.
func checkSamples(t *testing.T, got map[string]float64, want map[string]float64, absent []string) {
	t.Helper()
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("%s not exposed", k)
		case g != w:
			t.Errorf("%s = %v, want %v", k, g, w)
		}
	}
	for _, k := range absent {
		if g, ok := got[k]; ok {
			t.Errorf("%s = %v, want it absent", k, g)
		}
	}
}

// testProject is the project the tests of one project record for.
const testProject = "eu"

// newProject returns a new Metrics and its view of testProject.
func newProject() (*metrics.Metrics, *metrics.Project) {
	m := metrics.New()
	return m, m.Project(testProject)
}

// scrapeProject is scrape's samples of testProject, keyed without their
// project label, so that a test of one project reads like one of today's
// single-project metrics; samples of no project or another one are left
// out.
func scrapeProject(t *testing.T, m *metrics.Metrics) map[string]float64 {
	t.Helper()
	return ofProject(scrape(t, m), testProject)
}

// ofProject returns the samples of got that carry project=name, keyed
// without that label.
func ofProject(got map[string]float64, name string) map[string]float64 {
	out := make(map[string]float64)
	for k, v := range got {
		metric, labels, ok := strings.Cut(k, "{")
		if !ok {
			continue
		}
		var pairs []string
		found := false
		for _, m := range labelPair.FindAllStringSubmatch(labels, -1) {
			if m[1] == "project" {
				found = m[2] == name
				continue
			}
			pairs = append(pairs, m[0])
		}
		if !found {
			continue
		}
		if len(pairs) == 0 {
			out[metric] = v
		} else {
			out[metric+"{"+strings.Join(pairs, ",")+"}"] = v
		}
	}
	return out
}
