package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestConfigErrorsNameTheKey(t *testing.T) {
	base := map[string]string{
		"SYNCD_DATABASE_URL":     "postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
		"SYNCD_SINCH_PROJECT_ID": "p1",
		"SYNCD_SINCH_KEY_ID":     "key",
		"SYNCD_SINCH_KEY_SECRET": "do-not-print-me",
	}
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"unknown region", map[string]string{"SYNCD_SINCH_REGION": "mars"}, "sinch.region"},
		{"missing project", map[string]string{"SYNCD_SINCH_PROJECT_ID": ""}, "sinch.project_id"},
		{"missing secret", map[string]string{"SYNCD_SINCH_KEY_SECRET": ""}, "sinch.key_secret"},
		{"bad auth", map[string]string{"SYNCD_SINCH_AUTH": "magic"}, "sinch.auth"},
		{"unreachable database", map[string]string{"SYNCD_DATABASE_URL": "postgres://postgres:hunter2@127.0.0.1:1/none?sslmode=disable&connect_timeout=2"}, "database.url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			for k, v := range tt.env {
				env[k] = v
			}
			var out, errOut bytes.Buffer
			code := run(context.Background(), []string{"diff"}, &out, &errOut, func(k string) string { return env[k] })
			msg := errOut.String()
			if code != exitError {
				t.Fatalf("exit %d, want 1; stderr %q", code, msg)
			}
			if !strings.Contains(msg, tt.want) || strings.Count(strings.TrimSpace(msg), "\n") != 0 {
				t.Errorf("stderr = %q, want one line naming %s", msg, tt.want)
			}
			for _, secret := range []string{"do-not-print-me", "hunter2"} {
				if strings.Contains(msg, secret) {
					t.Errorf("stderr leaks a secret: %q", msg)
				}
			}
		})
	}
}

func TestConfigFile(t *testing.T) {
	t.Run("the example config.yaml holds the defaults", func(t *testing.T) {
		cfg, err := loadConfig(filepath.Join("..", "..", "config.yaml"), true, func(string) string { return "" })
		if err == nil || !strings.Contains(err.Error(), "sinch.project_id") {
			t.Fatalf("want the example to need only a project and credentials, got %v", err)
		}
		if want := defaultConfig(); !reflect.DeepEqual(cfg, want) {
			t.Errorf("config.yaml differs from the built-in defaults:\n got %+v\nwant %+v", cfg, want)
		}
	})
	t.Run("unknown keys are errors", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(path, []byte("sinch:\n  projectid: x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := loadConfig(path, true, func(string) string { return "" })
		if err == nil || !strings.Contains(err.Error(), "projectid") {
			t.Errorf("err = %v, want it to name the unknown key", err)
		}
	})
	t.Run("a named file must exist", func(t *testing.T) {
		_, err := loadConfig(filepath.Join(t.TempDir(), "missing.yaml"), true, func(string) string { return "" })
		if err == nil {
			t.Error("want an error for a missing --config file")
		}
	})
	t.Run("the environment overrides the file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(path, []byte("sinch:\n  project_id: from-file\n  key_id: k\n  key_secret: s\n  region: eu\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := loadConfig(path, true, func(k string) string {
			return map[string]string{"SYNCD_SINCH_PROJECT_ID": "from-env"}[k]
		})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Sinch.ProjectID != "from-env" || cfg.Sinch.Region != "eu" {
			t.Errorf("project %q region %q", cfg.Sinch.ProjectID, cfg.Sinch.Region)
		}
	})
}

// configKeys lists every key of Config as a dotted path, from the yaml tags.
func configKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if name == "" || name == "-" {
			continue
		}
		path := prefix + name
		if f.Type.Kind() == reflect.Struct {
			keys = append(keys, configKeys(f.Type, path+".")...)
			continue
		}
		keys = append(keys, path)
	}
	return keys
}

// TestEveryConfigKeyIsDocumented keeps config.yaml and the README's
// configuration reference in step with the code.
func TestEveryConfigKeyIsDocumented(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile(filepath.Join("..", "..", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(example, &doc); err != nil {
		t.Fatal(err)
	}
	keys := configKeys(reflect.TypeOf(Config{}), "")
	if len(keys) < 30 {
		t.Fatalf("found only %d keys: %v", len(keys), keys)
	}
	for _, key := range keys {
		if !strings.Contains(string(readme), "`"+key+"`") {
			t.Errorf("README.md does not document `%s`", key)
		}
		if !yamlHas(doc.Content[0], strings.Split(key, ".")) {
			t.Errorf("config.yaml has no %s", key)
		}
	}
}

func yamlHas(n *yaml.Node, path []string) bool {
	if len(path) == 0 {
		return true
	}
	if n.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == path[0] {
			return yamlHas(n.Content[i+1], path[1:])
		}
	}
	return false
}

func TestMigrateNeedsOnlyTheDatabase(t *testing.T) {
	h := newHarness(t)
	delete(h.env, "SYNCD_SINCH_PROJECT_ID")
	delete(h.env, "SYNCD_SINCH_KEY_SECRET")
	if code, out, errOut := h.run("migrate"); code != 0 {
		t.Errorf("migrate without Sinch settings exited %d:\n%s%s", code, out, errOut)
	}
}

// writeConfig writes yaml to a file of the test's and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// allProblems is what config check lists: the problems of reading and
// those of the values read.
func allProblems(t *testing.T, yaml string, env map[string]string) []string {
	t.Helper()
	cfg, err := readConfig(writeConfig(t, yaml), true, func(k string) string { return env[k] })
	var read configErrors
	if err != nil && !errors.As(err, &read) {
		t.Fatal(err)
	}
	var out []string
	for _, p := range append([]error(read), cfg.problems()...) {
		out = append(out, p.Error())
	}
	return out
}

func TestProjects(t *testing.T) {
	env := map[string]string{
		"SYNCD_SINCH_PROJECT_ID":    "p-shared",
		"SYNCD_SINCH_KEY_ID":        "key-shared",
		"SYNCD_SINCH_KEY_SECRET":    "secret-shared",
		"SYNCD_EU_SINCH_PROJECT_ID": "p-eu",
		"SYNCD_EU_SINCH_KEY_SECRET": "secret-eu",
		"SYNCD_EU_WEBHOOK_SECRET":   "hook-eu",
		"SYNCD_WEBHOOK_SECRET":      "hook-shared",
		"SYNCD_DATABASE_URL":        "postgres://postgres@127.0.0.1:5432/other?sslmode=disable",
	}
	t.Run("without projects: one project, default, the whole configuration", func(t *testing.T) {
		cfg, err := loadConfig(writeConfig(t, "sinch:\n  region: eu\n"), true, func(k string) string { return env[k] })
		if err != nil {
			t.Fatal(err)
		}
		got := cfg.Projects()
		if len(got) != 1 || got[0].Name != defaultProjectName || !reflect.DeepEqual(got[0].Config, cfg) {
			t.Errorf("Projects() = %+v, want the one project default", got)
		}
	})
	cfg, err := loadConfig(writeConfig(t, `
sinch:
  region: eu
  timeout: 3s
crm:
  batch_size: 50
webhook:
  listen: 127.0.0.1:8789
projects:
  - name: eu
    crm:
      filter: region = 'eu'
    sync:
      external_id_prefix: "eu-"
    webhook:
      path: /hooks/eu
  - name: us_1
    sinch:
      region: us
      project_id: p-us
      key_id: key-us
    crm:
      source: crm.us_contacts
    schedule:
      full: "@daily"
`), true, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	ps := cfg.Projects()
	if len(ps) != 2 || ps[0].Name != "eu" || ps[1].Name != "us_1" {
		t.Fatalf("Projects() = %+v, want eu and us_1", ps)
	}
	eu, us := ps[0].Config, ps[1].Config
	tests := []struct {
		key       string
		got, want any
	}{
		{"eu sinch.project_id: its own variable", eu.Sinch.ProjectID, "p-eu"},
		{"eu sinch.key_id: no variable of its own, the unprefixed one", eu.Sinch.KeyID, "key-shared"},
		{"eu sinch.key_secret: its own variable", eu.Sinch.KeySecret, "secret-eu"},
		{"eu sinch.region: the top level's", eu.Sinch.Region, "eu"},
		{"eu sinch.timeout: the top level's", eu.Sinch.Timeout, 3 * time.Second},
		{"eu crm.filter", eu.CRM.Filter, "region = 'eu'"},
		{"eu crm.source: the default", eu.CRM.Source, "crm_contacts"},
		{"eu crm.batch_size: the top level's", eu.CRM.BatchSize, 50},
		{"eu sync.external_id_prefix", eu.Sync.ExternalIDPrefix, "eu-"},
		{"eu webhook.listen: the top level's", eu.Webhook.Listen, "127.0.0.1:8789"},
		{"eu webhook.path", eu.Webhook.Path, "/hooks/eu"},
		{"eu webhook.secret: its own variable", eu.Webhook.Secret, "hook-eu"},
		{"eu database.url: the process's", eu.Database.URL, env["SYNCD_DATABASE_URL"]},
		{"us sinch.project_id: its section over the unprefixed variable", us.Sinch.ProjectID, "p-us"},
		{"us sinch.key_id: its section", us.Sinch.KeyID, "key-us"},
		{"us sinch.key_secret: the unprefixed variable", us.Sinch.KeySecret, "secret-shared"},
		{"us sinch.region: its own", us.Sinch.Region, "us"},
		{"us sinch.timeout: the top level's", us.Sinch.Timeout, 3 * time.Second},
		{"us crm.source", us.CRM.Source, "crm.us_contacts"},
		{"us crm.filter: none", us.CRM.Filter, ""},
		{"us schedule.full", us.Schedule.Full, "@daily"},
		{"us schedule.incremental: the default", us.Schedule.Incremental, "@every 1m"},
		{"us webhook.path: the default", us.Webhook.Path, "/webhooks/sinch"},
		{"us webhook.secret: the unprefixed variable", us.Webhook.Secret, "hook-shared"},
		{"us sync.phone_channels: the default", us.Sync.PhoneChannels, []string{"SMS", "WHATSAPP"}},
	}
	for _, tc := range tests {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s = %v, want %v", tc.key, tc.got, tc.want)
		}
	}
	if len(eu.Projects()) != 1 || eu.Projects()[0].Name != defaultProjectName {
		t.Errorf("a project's configuration names projects of its own: %+v", eu.Projects())
	}
}

func TestProjectProblems(t *testing.T) {
	env := map[string]string{
		"SYNCD_SINCH_KEY_ID":        "key",
		"SYNCD_SINCH_KEY_SECRET":    "do-not-print-me",
		"SYNCD_EU_SINCH_PROJECT_ID": "p-eu",
		"SYNCD_US_SINCH_PROJECT_ID": "p-us",
	}
	const two = "projects:\n  - name: eu\n  - name: us\n"
	tests := []struct {
		name string
		yaml string
		want []string // each a problem's beginning, in order
	}{
		{"two well-formed projects", two, nil},
		{"a list of one", "projects:\n  - name: eu\n", nil},
		{"a malformed name", "projects:\n  - name: EU\n    sinch: {project_id: p1}\n", []string{
			`projects[0].name: "EU" is not lower case letters, digits and _`}},
		{"no name", "projects:\n  - sinch: {project_id: p1}\n", []string{"projects[0].name is required"}},
		{"a name that is a list", "projects:\n  - name: [eu]\n    sinch: {project_id: p1}\n", []string{
			`projects[0].name: a list is not a single value`, "projects[0].name is required"}},
		{"a name twice", "projects:\n  - name: eu\n  - name: eu\n    sinch: {project_id: p2}\n", []string{
			`projects[1].name: "eu" names another project too: names are unique`,
			`projects[1].sinch.project_id: "p-eu" is projects[eu]'s too`}}, // SYNCD_EU_SINCH_PROJECT_ID is both's
		{"an unknown section", two + "    database: {url: x}\n", []string{
			"projects[us].database: unknown key (a project has name, sinch, crm, sync, schedule, webhook)"}},
		{"a key of the wrong kind", two + "    crm: {batch_size: many}\n", []string{
			`projects[us].crm.batch_size: "many" is not a whole number`}},
		{"an unknown key in a section", two + "    sinch: {projectid: x}\n", []string{"projects[us].sinch.projectid: unknown key"}},
		{"a bad value", two + "    sinch: {region: mars}\n", []string{`projects[us].sinch.region: "mars" is not one of us, eu, br`}},
		{"a project without its Sinch project", "projects:\n  - name: eu\n  - name: ap\n", []string{
			"projects[ap].sinch.project_id is required (or SYNCD_AP_SINCH_PROJECT_ID)"}},
		{"a webhook without its secret", two + "    webhook: {listen: '127.0.0.1:8789'}\n", []string{
			"projects[us].webhook.secret is required with webhook.listen (or SYNCD_US_WEBHOOK_SECRET)"}},
		{"one Sinch project twice", "projects:\n  - name: eu\n  - name: ap\n    sinch: {project_id: p-eu}\n", []string{
			`projects[ap].sinch.project_id: "p-eu" is projects[eu]'s too`}},
		{"a project's variable over its section", two + "    sinch: {project_id: p-eu}\n", nil},
		{"one webhook path on one listener", "webhook: {listen: '127.0.0.1:8789', secret: s}\n" + two, []string{
			"projects[us].webhook.path: /webhooks/sinch on 127.0.0.1:8789 is projects[eu]'s too"}},
		{"one path on two listeners", "webhook: {secret: s}\n" + two + "    webhook: {listen: '127.0.0.1:8790'}\n", nil},
		{"the webhook on http.listen", "webhook: {secret: s}\nhttp: {listen: '127.0.0.1:9464'}\n" + two + "    webhook: {listen: '127.0.0.1:9464'}\n", []string{
			"projects[us].webhook.listen: 127.0.0.1:9464 is http.listen's"}},
		{"not a list", "projects: {eu: {}}\n", []string{"projects: want a list of projects, not a set of keys",
			"sinch.project_id is required (or SYNCD_SINCH_PROJECT_ID)"}},
		{"an empty list", "projects: []\n", []string{"projects: the list is empty", "sinch.project_id is required (or SYNCD_SINCH_PROJECT_ID)"}},
		{"an entry that is no project", "projects:\n  - eu\n", []string{"projects[0]: want the keys of a project", "projects[0].name is required",
			"projects[0].sinch.project_id is required (or SYNCD_SINCH_PROJECT_ID)"}},
		{"the process's keys stay at the top level", "database: {url: 'mysql://x'}\n" + two, []string{"database.url must be a postgres:// URL"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := allProblems(t, tc.yaml, env)
			if len(got) != len(tc.want) {
				t.Fatalf("problems:\n%s\nwant %d: %q", strings.Join(got, "\n"), len(tc.want), tc.want)
			}
			for i, p := range got {
				if !strings.HasPrefix(p, tc.want[i]) {
					t.Errorf("problem %d = %q, want it to begin %q", i, p, tc.want[i])
				}
				if strings.Contains(p, "do-not-print-me") {
					t.Errorf("a problem leaks a secret: %q", p)
				}
			}
		})
	}
}

// What the file says is read as the person who wrote it meant: 0 for a
// duration, a whole number or an error, a typo with the key it misses.
func TestConfigValues(t *testing.T) {
	env := map[string]string{"SYNCD_SINCH_PROJECT_ID": "p", "SYNCD_SINCH_KEY_ID": "k", "SYNCD_SINCH_KEY_SECRET": "s"}
	tests := []struct {
		name, yaml string
		check      func(Config) bool
		wantErr    string // "" for none; else in the error, which is the only one
	}{
		{"retention 0 keeps everything", "journal:\n  retention: 0\n", func(c Config) bool { return c.Journal.Retention == 0 }, ""},
		{"shutdown_timeout 0 stops at once", "shutdown_timeout: 0\n", func(c Config) bool { return c.ShutdownTimeout == 0 }, ""},
		{"0s is 0 too", "journal:\n  retention: 0s\n", func(c Config) bool { return c.Journal.Retention == 0 }, ""},
		{"a number without its unit", "shutdown_timeout: 30\n", nil, `shutdown_timeout: "30" is not a duration (like 30s, 5m or 1h30m, or 0): a number needs its unit`},
		{"a fraction of an attempt", "sinch:\n  max_attempts: 2.5\n", nil, `sinch.max_attempts: "2.5" is not a whole number`},
		{"a whole number", "sinch:\n  max_attempts: 3\n", func(c Config) bool { return c.Sinch.MaxAttempts == 3 }, ""},
		{"a typo in a key", "sinch:\n  rate_limt_rps: 5\n", nil, "sinch.rate_limt_rps: unknown key; did you mean sinch.rate_limit_rps?"},
		{"a typo in a section", "scheduel:\n  full: '@daily'\n", nil, "scheduel: unknown key; did you mean schedule?"},
		{"a typo in a project", "projects:\n  - name: eu\n    sinhc: {region: eu}\n", nil, "projects[eu].sinhc: unknown key; did you mean projects[eu].sinch?"},
		{"no near key", "sinch:\n  colour: blue\n", nil, "sinch.colour: unknown key ("},
		{"a YAML syntax error alone", "sinch:\n  project_id: p\n key_id: [\n", nil, "not valid YAML: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := loadConfig(path, true, func(k string) string { return env[k] })
			if tt.wantErr == "" {
				if err != nil || !tt.check(cfg) {
					t.Errorf("err %v, config %+v", err, cfg)
				}
				return
			}
			var all configErrors
			if errors.As(err, &all) && len(all) != 1 {
				t.Errorf("%d problems, want the one: %v", len(all), []error(all))
			}
			if err == nil || !strings.Contains(err.Error()+" (", tt.wantErr) {
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// Without --config, syncd reads $SYNCD_CONFIG, else ./config.yaml, else
// the package's /etc/syncd/config.yaml, and config check says which.
func TestConfigSearch(t *testing.T) {
	dir := t.TempDir()
	system := filepath.Join(dir, "etc", "config.yaml")
	if err := os.MkdirAll(filepath.Dir(system), 0o755); err != nil {
		t.Fatal(err)
	}
	saved := systemConfig
	systemConfig = system
	t.Cleanup(func() { systemConfig = saved })
	write := func(path, project string) {
		t.Helper()
		if err := os.WriteFile(path, []byte("sinch:\n  project_id: "+project+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(work)
	named := filepath.Join(dir, "named.yaml")
	write(named, "from-env-var")
	write(system, "from-etc")

	project := func(vars map[string]string, args ...string) (string, string) {
		t.Helper()
		var out, errOut bytes.Buffer
		e := &env{stdout: &out, stderr: &errOut, getenv: func(k string) string { return vars[k] }}
		code := execute(context.Background(), e, append(args, "config", "check"))
		if code != exitError { // no key: the check fails, after saying what it read
			t.Fatalf("config check exited %d:\n%s%s", code, out.String(), errOut.String())
		}
		first, _, _ := strings.Cut(out.String(), "\n")
		cfg, _ := readConfig(e.configPath, e.configExplicit, e.getenv)
		return cfg.Sinch.ProjectID, first
	}
	if got, line := project(nil); got != "from-etc" || !strings.Contains(line, system) {
		t.Errorf("with only %s: project %q, %q", system, got, line)
	}
	write(filepath.Join(work, "config.yaml"), "from-cwd")
	if got, line := project(nil); got != "from-cwd" || !strings.Contains(line, filepath.Join(work, "config.yaml")) {
		t.Errorf("with ./config.yaml: project %q, %q", got, line)
	}
	if got, line := project(map[string]string{"SYNCD_CONFIG": named}); got != "from-env-var" || !strings.Contains(line, named) {
		t.Errorf("with SYNCD_CONFIG: project %q, %q", got, line)
	}
	other := filepath.Join(dir, "other.yaml")
	write(other, "from-flag")
	if got, _ := project(map[string]string{"SYNCD_CONFIG": named}, "--config", other); got != "from-flag" {
		t.Errorf("with --config and SYNCD_CONFIG: project %q", got)
	}
	// A file named by SYNCD_CONFIG must exist, as one named by --config.
	var out, errOut bytes.Buffer
	e := &env{stdout: &out, stderr: &errOut, getenv: func(k string) string { return map[string]string{"SYNCD_CONFIG": filepath.Join(dir, "gone.yaml")}[k] }}
	if code := execute(context.Background(), e, []string{"status"}); code != exitError || !strings.Contains(errOut.String(), "gone.yaml") {
		t.Errorf("a missing $SYNCD_CONFIG: exit %d, %s", code, errOut.String())
	}
}

// A SYNCD_ variable syncd does not read is warned about, with the name it
// was probably meant to be.
func TestUnknownEnvironmentVariables(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	h.env["SYNCD_SINCH_KEYSECRET"] = "x"
	h.env["SYNCD_EU_SINCH_KEY_SECRET"] = "y" // no project eu
	h.env["SYNCD_TEST_ANYTHING"] = "the test suite's"
	code, out, errOut := h.run("status")
	if code != 0 {
		t.Fatalf("status exited %d:\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		"syncd: warning: SYNCD_SINCH_KEYSECRET is not a variable syncd reads, and is ignored; did you mean SYNCD_SINCH_KEY_SECRET?",
		"syncd: warning: SYNCD_EU_SINCH_KEY_SECRET is not a variable syncd reads",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(errOut, "SYNCD_TEST_") {
		t.Errorf("warned about the test suite's variable:\n%s", errOut)
	}
	_, out, _ = h.run("config", "check")
	if !strings.Contains(out, "! SYNCD_SINCH_KEYSECRET is not a variable syncd reads") {
		t.Errorf("config check does not warn:\n%s", out)
	}
}

// status and prune read syncd's state only: the service's user runs them
// without the access key, which lives in the root-only environment file.
func TestLocalCommandsNeedNoSinchKey(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	delete(h.env, "SYNCD_SINCH_KEY_ID")
	delete(h.env, "SYNCD_SINCH_KEY_SECRET")
	for _, args := range [][]string{{"status"}, {"prune"}, {"status", "--format", "json"}} {
		if code, out, errOut := h.run(args...); code != 0 {
			t.Errorf("%v without a key exited %d:\n%s%s", args, code, out, errOut)
		}
	}
	if code, _, errOut := h.run("diff"); code != exitError || !strings.Contains(errOut, "sinch.key_id") {
		t.Errorf("diff without a key exited %d: %s", code, errOut)
	}
}
