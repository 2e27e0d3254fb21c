package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// syncd docs writes a manual page for syncd and every command, each with
// its exit statuses, and the completion scripts the package installs.
func TestDocs(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	man, comp := filepath.Join(dir, "man"), filepath.Join(dir, "completions")
	if code, out, errOut := h.run("docs", "--man", man, "--completions", comp, "--date", "2026-12-01", "--source", "syncd 1.2.3"); code != 0 {
		t.Fatalf("docs exited %d:\n%s%s", code, out, errOut)
	}
	for _, page := range []string{"syncd.1", "syncd-run.1", "syncd-backfill.1", "syncd-config-check.1", "syncd-webhooks-register.1", "syncd-prune.1", "syncd-events-retry.1"} {
		b, err := os.ReadFile(filepath.Join(man, page))
		if err != nil {
			t.Error(err)
			continue
		}
		s := string(b)
		if !strings.Contains(s, ".SH EXIT STATUS") || !strings.Contains(s, `"syncd 1.2.3"`) || !strings.Contains(s, "Dec 2026") {
			t.Errorf("%s lacks its exit statuses, source or date:\n%s", page, s)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(man, "syncd-backfill.1")); !strings.Contains(string(b), "130 interrupted") {
		t.Errorf("syncd-backfill.1 does not list 130:\n%s", b)
	}
	if _, err := os.Stat(filepath.Join(man, "syncd-docs.1")); err == nil {
		t.Error("the hidden docs command has a page")
	}
	for name, want := range map[string]string{"syncd.bash": "__start_syncd", "_syncd": "#compdef syncd", "syncd.fish": "complete -c syncd"} {
		if b, err := os.ReadFile(filepath.Join(comp, name)); err != nil || !strings.Contains(string(b), want) {
			t.Errorf("%s: %v, or it lacks %q", name, err, want)
		}
	}
}
