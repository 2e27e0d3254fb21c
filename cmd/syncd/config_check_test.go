package main

import (
	"os"
	"strings"
	"testing"

	"github.com/syncd/syncd/state/statetest"
)

func TestConfigCheck(t *testing.T) {
	h := newHarness(t)

	migrated := h.env["SYNCD_DATABASE_URL"]
	h.env["SYNCD_DATABASE_URL"] = statetest.NewEmptyDatabase(t)
	code, out, _ := h.run("config", "check")
	if code != 0 || !strings.Contains(out, "migrations pending: run syncd migrate") {
		t.Fatalf("config check on an unmigrated database exited %d:\n%s", code, out)
	}
	h.env["SYNCD_DATABASE_URL"] = migrated
	code, out, _ = h.run("config", "check")
	if code != 0 || !strings.Contains(out, "migrations up to date") || !strings.Contains(out, "oauth2 auth accepted") {
		t.Fatalf("config check exited %d:\n%s", code, out)
	}

	// A wrong secret: the configuration is fine, Sinch refuses it.
	h.env["SYNCD_SINCH_KEY_SECRET"] = "not-the-secret"
	code, out, _ = h.run("config", "check")
	if code != exitError || !strings.Contains(out, "credentials were refused") || strings.Contains(out, "not-the-secret") {
		t.Errorf("config check with a wrong secret exited %d:\n%s", code, out)
	}
	h.env["SYNCD_SINCH_KEY_SECRET"] = "s3cret-value"

	// A key of another project: Sinch answers 403.
	h.env["SYNCD_SINCH_PROJECT_ID"] = "p2"
	code, out, _ = h.run("config", "check")
	if code != exitError || !strings.Contains(out, "sinch.project_id and sinch.key_id") {
		t.Errorf("config check with another project exited %d:\n%s", code, out)
	}
	h.env["SYNCD_SINCH_PROJECT_ID"] = "p1"

	// Several bad keys are all named, one per line.
	h.setConfig("sinch:\n  region: mars\n  rate_limit_rps: 0\nschedule:\n  full: 'every day'\nlog:\n  format: fancy\nsync:\n  delete_policy: purge\n")
	code, out, _ = h.run("config", "check")
	if code != exitError {
		t.Fatalf("config check with bad keys exited %d:\n%s", code, out)
	}
	for _, key := range []string{"sinch.region", "sinch.rate_limit_rps", "schedule.full", "log.format", "sync.delete_policy"} {
		if !strings.Contains(out, key) {
			t.Errorf("config check does not name %s:\n%s", key, out)
		}
	}

	h.setConfig("sinch:\n  regoin: eu\n")
	code, out, errOut := h.run("config", "check")
	if code != exitError || !strings.Contains(out+errOut, "regoin") {
		t.Errorf("an unknown key: exit %d\n%s%s", code, out, errOut)
	}
}

// Every problem of a file is reported at once, by key path, in words rather
// than Go's types or the parser's.
func TestConfigCheckReportsEveryProblemByKey(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name, yaml string
		env        map[string]string
		want       []string
		summary    string
	}{
		{
			name: "unknown key, type errors and a bad region",
			yaml: "sinch:\n  colour: blue\n  region: mars\n  timeout: soon\n  max_attempts: many\nlog:\n  pii: perhaps\nsync:\n  phone_channels: SMS\n",
			want: []string{"sinch.colour: unknown key", `sinch.region: "mars" is not one of us, eu, br`,
				`sinch.timeout: "soon" is not a duration`, `sinch.max_attempts: "many" is not a whole number`,
				`log.pii: "perhaps" is not true or false`, `sync.phone_channels: "SMS" is not a list`},
			summary: "6 configuration problems",
		},
		{name: "one problem", yaml: "colour: blue\n", want: []string{"colour: unknown key"}, summary: "1 configuration problem"},
		{name: "a bad environment value", yaml: "", env: map[string]string{"SYNCD_LOG_PII": "perhaps"},
			want: []string{`SYNCD_LOG_PII (log.pii): "perhaps" is not true or false`}, summary: "1 configuration problem"},
		{name: "a bad schedule", yaml: "schedule:\n  full: 'every day'\n",
			want: []string{`schedule.full: "every day" is not a schedule`}, summary: "1 configuration problem"},
		{name: "not YAML", yaml: "sinch: [\n", want: []string{"not valid YAML"}, summary: "1 configuration problem"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				h.env[k] = v
				t.Cleanup(func() { delete(h.env, k) })
			}
			h.setConfig(tc.yaml)
			code, out, errOut := h.run("config", "check")
			if code != exitError {
				t.Fatalf("exit %d:\n%s%s", code, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if got := strings.TrimSpace(errOut); got != "syncd: "+tc.summary {
				t.Errorf("summary %q, want %q", got, tc.summary)
			}
			for _, jargon := range []string{"main.", "!!str", "strconv", "unmarshal", "time.Duration", "expected exactly"} {
				if strings.Contains(out+errOut, jargon) {
					t.Errorf("output speaks of %q:\n%s%s", jargon, out, errOut)
				}
			}
		})
	}
}

// crm.source is checked against the contract: every missing or mistyped
// column named, a naive timestamp warned about.
func TestConfigCheckSource(t *testing.T) {
	h := newHarness(t)
	for _, q := range []string{
		`CREATE TABLE people (id text, display_name varchar(80), channel_priority text, updated_at integer)`,
		`CREATE TABLE naive (external_id uuid, display_name text, email text, phone text, channel_identities jsonb,
			channel_priority varchar[], language text, metadata jsonb, updated_at timestamp, deleted_at timestamp)`,
	} {
		if err := h.store.DB().Exec(q).Error; err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		source string
		code   int
		want   []string
	}{
		{"people", exitError, []string{"missing external_id, email, phone, channel_identities, language, metadata, deleted_at",
			"channel_priority is text, want text[]", "updated_at is integer, want timestamptz"}},
		{"naive", 0, []string{"! crm.source: updated_at is timestamp without time zone", "✓ crm.source: naive has every contract column"}},
		{"nowhere", exitError, []string{"relation nowhere does not exist"}},
		{"crm_contacts", 0, []string{"✓ crm.source: crm_contacts has every contract column"}},
	}
	for _, tc := range tests {
		t.Run(tc.source, func(t *testing.T) {
			h.env["SYNCD_CRM_SOURCE"] = tc.source
			code, out, errOut := h.run("config", "check")
			if code != tc.code {
				t.Errorf("exit %d, want %d:\n%s%s", code, tc.code, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if tc.source == "crm_contacts" && strings.Contains(out, "!") {
				t.Errorf("a warning on the reference table:\n%s", out)
			}
		})
	}
}

// With several projects config check checks each, its checks named by the
// project, the database once; --project checks one.
func TestConfigCheckSeveralProjects(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	h.twoProjects("")
	good, err := os.ReadFile(h.config)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		replace [2]string // in the configuration
		code    int
		want    []string
		not     []string
	}{
		{name: "every project", code: 0, want: []string{
			"✓ database.url: connected; migrations up to date",
			"✓ projects[eu].crm.source: crm_contacts has every contract column and crm.filter runs over it",
			"✓ projects[eu].sinch: oauth2 auth accepted for project p1",
			"✓ projects[us].crm.source: crm_contacts has every contract column and crm.filter runs over it",
			"✓ projects[us].sinch: oauth2 auth accepted for project p2"}},
		{name: "one project", args: []string{"--project", "us"}, code: 0,
			want: []string{"✓ projects[us].sinch: oauth2 auth accepted for project p2"}, not: []string{"projects[eu]"}},
		{name: "an unknown project", args: []string{"--project", "ap"}, code: exitError,
			want: []string{`✗ --project "ap": the configuration names eu, us`}, not: []string{"projects["}},
		{name: "a filter that does not run", replace: [2]string{"filter: region = 'us'", "filter: regoin = 'us'"}, code: exitError, want: []string{
			"✓ projects[eu].crm.source", "✗ projects[us].crm.source: the filter regoin = 'us' does not run over crm_contacts"}},
		{name: "a refused key", env: map[string]string{"SYNCD_US_SINCH_KEY_SECRET": "not-the-secret"}, code: exitError, want: []string{
			"✓ projects[eu].sinch", "✗ projects[us].sinch: ", "credentials were refused"}, not: []string{"not-the-secret"}},
		{name: "a project's bad key", replace: [2]string{"filter: region = 'us'", "filter: region = 'us'\n    sync:\n      delete_policy: purge"}, code: exitError,
			want: []string{"✗ configuration from", "projects[us].sync.delete_policy"}, not: []string{"database.url"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h.setConfig(string(good))
			if tc.replace[0] != "" {
				h.setConfig(strings.Replace(string(good), tc.replace[0], tc.replace[1], 1))
			}
			for k, v := range tc.env {
				old := h.env[k]
				h.env[k] = v
				t.Cleanup(func() { h.env[k] = old })
			}
			code, out, errOut := h.run(append(tc.args, "config", "check")...)
			if code != tc.code {
				t.Errorf("exit %d, want %d:\n%s%s", code, tc.code, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(out+errOut, w) {
					t.Errorf("output has %q:\n%s%s", w, out, errOut)
				}
			}
			if n := strings.Count(out, "database.url:"); n > 1 {
				t.Errorf("the database is checked %d times:\n%s", n, out)
			}
		})
	}
}
