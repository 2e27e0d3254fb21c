package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDiffOutIsPrivate: the plan file holds CRM values, so it ends up 0600
// whatever was at the path before: a wider file is replaced, a symlink is
// replaced and its target left alone, and no temporary file stays behind.
func TestDiffOutIsPrivate(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	h.load(crmRows(3))
	tests := []struct {
		name  string
		setup func(t *testing.T, path string) (check func(t *testing.T))
	}{
		{"new file", func(*testing.T, string) func(*testing.T) { return func(*testing.T) {} }},
		{"a file readable by all", func(t *testing.T, path string) func(*testing.T) {
			if err := os.WriteFile(path, []byte("old plan"), 0o644); err != nil {
				t.Fatal(err)
			}
			return func(*testing.T) {}
		}},
		{"a symlink", func(t *testing.T, path string) func(*testing.T) {
			target := filepath.Join(t.TempDir(), "elsewhere")
			if err := os.WriteFile(target, []byte("not a plan"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
			return func(t *testing.T) {
				got, err := os.ReadFile(target)
				if err != nil || string(got) != "not a plan" {
					t.Errorf("the symlink's target now holds %q (%v)", got, err)
				}
				if fi, _ := os.Stat(target); fi.Mode().Perm() != 0o644 {
					t.Errorf("the target's mode changed to %v", fi.Mode())
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "plan.json")
			check := tt.setup(t, path)
			if code, out, errOut := h.run("diff", "--out", path); code != exitChangesPending {
				t.Fatalf("diff --out exited %d:\n%s%s", code, out, errOut)
			}
			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
				t.Errorf("plan file mode %v, want a regular file 0600", fi.Mode())
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var plan map[string]any
			if err := json.Unmarshal(raw, &plan); err != nil || len(plan) == 0 {
				t.Errorf("plan file %q: %v", raw, err)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("the directory holds %d entries, want the plan alone", len(entries))
			}
			check(t)
		})
	}
}

// TestDiffEscapesTerminalControls: an external_id holding ESC[2J (and a
// name holding an OSC title sequence) reaches the operator's terminal
// escaped, whatever Sinch holds.
func TestDiffEscapesTerminalControls(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	rows := crmRows(2)
	rows[0].ExternalID = "crm-\x1b[2J"
	rows[1].DisplayName = str("Eve\x1b]0;owned\x07")
	h.load(rows)
	code, out, errOut := h.run("diff")
	if code != exitChangesPending {
		t.Fatalf("diff exited %d:\n%s%s", code, out, errOut)
	}
	if strings.ContainsAny(out+errOut, "\x1b\x07") {
		t.Errorf("diff sent terminal controls:\n%q", out)
	}
	if !strings.Contains(out, `crm-\x1b[2J`) {
		t.Errorf("diff does not show the external id escaped:\n%s", out)
	}
}

// TestDiffRedact: --redact hides the values a create would send and a
// reject quotes, in text and JSON, and keeps the reasons, the field names
// and the ids.
func TestDiffRedact(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	rows := crmRows(2)
	rows[1].Phone = str("call me")
	h.load(rows)
	for _, format := range []string{"text", "json"} {
		code, plain, errOut := h.run("diff", "--format", format)
		if code != exitChangesPending {
			t.Fatalf("diff --format %s exited %d:\n%s%s", format, code, plain, errOut)
		}
		if !strings.Contains(plain, "Person 1") || !strings.Contains(plain, "p1@example.com") {
			t.Errorf("diff --format %s does not show the values a create sends:\n%s", format, plain)
		}
		code, out, errOut := h.run("diff", "--redact", "--format", format)
		if code != exitChangesPending {
			t.Fatalf("diff --redact --format %s exited %d:\n%s%s", format, code, out, errOut)
		}
		for _, v := range []string{"Person 1", "p1@example.com", "46730000001", "call me", "Person 2"} {
			if strings.Contains(out, v) {
				t.Errorf("diff --redact --format %s shows %q:\n%s", format, v, out)
			}
		}
		for _, k := range []string{"crm-0001", "crm-0002", "no Sinch contact carries this external_id", "display_name", "email",
			"phone", "is not a phone number: it contains letters"} {
			if !strings.Contains(out, k) {
				t.Errorf("diff --redact --format %s lacks %q:\n%s", format, k, out)
			}
		}
	}
}
