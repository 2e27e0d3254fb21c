package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

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
