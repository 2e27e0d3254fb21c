package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The dashboard and the alert rules shipped in monitoring/ (and in the
// package, under /usr/share/doc/syncd/monitoring/) name syncd's metrics in
// PromQL; a renamed or removed metric would leave a panel empty and an
// alert silent without any error. These tests tie them to what `syncd run`
// really exports. promtool checks the rules' syntax and behaviour in CI
// (.ci/verify-monitoring); these need nothing but Go and PostgreSQL.

var monitoringDir = filepath.Join("..", "..", "monitoring")

// promRules is the part of a Prometheus rule file these tests read.
type promRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record      string            `yaml:"record"`
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readRules(t *testing.T) promRules {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(monitoringDir, "syncd-rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var r promRules
	if err := yaml.Unmarshal(b, &r); err != nil {
		t.Fatalf("syncd-rules.yml: %v", err)
	}
	return r
}

// dashboardExprs returns every PromQL expression of the dashboard: panel
// targets (rows nest panels too) and query variables.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(monitoringDir, "syncd-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var d struct {
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("syncd-dashboard.json: %v", err)
	}
	var exprs []string
	var walk func([]json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatalf("syncd-dashboard.json panel: %v", err)
			}
			for _, tg := range p.Targets {
				exprs = append(exprs, tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		switch q := v.Query.(type) {
		case string:
			exprs = append(exprs, q)
		case map[string]any:
			if s, ok := q["query"].(string); ok {
				exprs = append(exprs, s)
			}
		}
	}
	return exprs
}

var (
	// quoted strips label values and other string literals, whose contents
	// are not names.
	quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	// identifier is a PromQL name: metric names, recording rule names (with
	// colons), functions, keywords and label names.
	identifier = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
)

// namesIn returns the syncd_ metric names and the recording rule names
// (those with a colon) that expr refers to.
func namesIn(expr string) (metrics, recorded []string) {
	for _, id := range identifier.FindAllString(quoted.ReplaceAllString(expr, `""`), -1) {
		switch {
		case strings.Contains(id, ":"):
			recorded = append(recorded, id)
		case strings.HasPrefix(id, "syncd_"):
			metrics = append(metrics, id)
		}
	}
	return metrics, recorded
}

func TestNamesIn(t *testing.T) {
	tests := []struct {
		expr              string
		metrics, recorded []string
	}{
		{`sum by (kind) (rate(syncd_runs_total{job=~"$job"}[5m]))`, []string{"syncd_runs_total"}, nil},
		{`job:syncd_full_run_duration_seconds:p90_7d * scalar(syncd:threshold:lock_hold_factor)`, nil,
			[]string{"job:syncd_full_run_duration_seconds:p90_7d", "syncd:threshold:lock_hold_factor"}},
		{`up{job="syncd_x"} == 0 or absent(syncd_lock_held)`, []string{"syncd_lock_held"}, nil},
		{`syncd_a / syncd_b_bucket{le="+Inf"}`, []string{"syncd_a", "syncd_b_bucket"}, nil},
	}
	for _, tt := range tests {
		m, r := namesIn(tt.expr)
		if !slices.Equal(m, tt.metrics) || !slices.Equal(r, tt.recorded) {
			t.Errorf("namesIn(%q) = %v, %v; want %v, %v", tt.expr, m, r, tt.metrics, tt.recorded)
		}
	}
}

// exportedNames are the sample names in a Prometheus text exposition
// (a histogram's _bucket, _sum and _count included).
func exportedNames(text string) map[string]bool {
	names := make(map[string]bool)
	for line := range strings.Lines(text) {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

// TestMonitoringNamesAreExported runs the daemon through a full and an
// incremental run and checks that every syncd_ metric the dashboard or a
// rule names is in its /metrics, and that every recording rule named is
// defined in the rules file.
func TestMonitoringNamesAreExported(t *testing.T) {
	rules := readRules(t)
	recorded := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded[r.Record] = true
			}
		}
	}
	uses := map[string][]string{} // metric name -> where
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			m, rec := namesIn(r.Expr)
			where := "rule " + r.Record + r.Alert
			for _, n := range m {
				uses[n] = append(uses[n], where)
			}
			for _, n := range rec {
				if !recorded[n] {
					t.Errorf("%s uses %s, which no rule records", where, n)
				}
			}
		}
	}
	exprs := dashboardExprs(t)
	if len(exprs) < 10 {
		t.Fatalf("found %d expressions in the dashboard; the JSON layout changed?", len(exprs))
	}
	for _, e := range exprs {
		m, rec := namesIn(e)
		for _, n := range m {
			uses[n] = append(uses[n], "dashboard")
		}
		if len(rec) > 0 {
			t.Errorf("dashboard query %q uses recording rules %v: it must work without syncd-rules.yml loaded", e, rec)
		}
	}
	if len(uses) < 10 {
		t.Fatalf("found %d syncd_ metric names in the dashboard and rules; want the whole set", len(uses))
	}

	h := newHarness(t)
	h.setConfig(daemonConfig("schedule:\n  incremental: '@every 1s'\n  full: '@every 1h'\n"))
	h.migrate()
	h.load(crmRows(5))
	d := h.startDaemon()
	var text string
	eventually(t, "a full and an incremental run have succeeded", func() bool {
		text = httpGet(t, "http://"+d.addr+"/metrics")
		return strings.Contains(text, `syncd_runs_total{kind="full",outcome="succeeded",project="default"} 1`) &&
			!strings.Contains(text, `syncd_runs_total{kind="incremental",outcome="succeeded",project="default"} 0`)
	})
	exported := exportedNames(text)
	for name, where := range uses {
		if !exported[name] {
			slices.Sort(where)
			t.Errorf("%s is named by %s but not exported by syncd run", name, strings.Join(slices.Compact(where), ", "))
		}
	}
}

// TestAlertsHaveRunbooksAndTests: each alert says what to do, and each is
// exercised by the promtool unit tests, firing at least once.
func TestAlertsHaveRunbooksAndTests(t *testing.T) {
	fires := map[string]bool{}
	for _, f := range []string{"syncd-rules.test.yml", "syncd-rules.days.test.yml"} {
		b, err := os.ReadFile(filepath.Join(monitoringDir, f))
		if err != nil {
			t.Fatal(err)
		}
		var unit struct {
			Tests []struct {
				AlertRuleTest []struct {
					Alertname string `yaml:"alertname"`
					ExpAlerts []any  `yaml:"exp_alerts"`
				} `yaml:"alert_rule_test"`
			} `yaml:"tests"`
		}
		if err := yaml.Unmarshal(b, &unit); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, tc := range unit.Tests {
			for _, a := range tc.AlertRuleTest {
				if len(a.ExpAlerts) > 0 {
					fires[a.Alertname] = true
				}
			}
		}
	}
	runbooks, err := os.ReadFile(filepath.Join("..", "..", "docs", "runbooks.md"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			for _, key := range []string{"summary", "description", "runbook_url"} {
				if strings.TrimSpace(r.Annotations[key]) == "" {
					t.Errorf("alert %s has no %s annotation", r.Alert, key)
				}
			}
			// The runbook is the alert's section of docs/runbooks.md.
			want := "https://github.com/syncd/syncd/blob/main/docs/runbooks.md#" + strings.ToLower(r.Alert)
			if r.Annotations["runbook_url"] != want || !strings.Contains(string(runbooks), "\n## "+r.Alert+"\n") {
				t.Errorf("alert %s: runbook_url %q, want %s, a section of docs/runbooks.md", r.Alert, r.Annotations["runbook_url"], want)
			}
			if r.For == "" {
				t.Errorf("alert %s has no for:", r.Alert)
			}
			if !fires[r.Alert] {
				t.Errorf("alert %s never fires in the promtool tests", r.Alert)
			}
		}
	}
	if n < 7 {
		t.Errorf("%d alerts, want at least the 7 the issue lists", n)
	}
}
