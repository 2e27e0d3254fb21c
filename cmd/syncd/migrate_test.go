package main

import (
	"strings"
	"testing"

	"github.com/syncd/syncd/state/statetest"
)

// Every command that needs syncd's schema says, in one line, that the
// database is not migrated; the daemon refuses to start rather than look
// healthy while running nothing.
func TestCommandsOnAnUnmigratedDatabase(t *testing.T) {
	h := newHarness(t)
	h.env["SYNCD_DATABASE_URL"] = statetest.NewEmptyDatabase(t)
	h.setConfig(daemonConfig(""))
	for _, args := range [][]string{{"status"}, {"diff"}, {"backfill"}, {"run"}} {
		t.Run(args[0], func(t *testing.T) {
			code, out, errOut := h.run(args...)
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			if code != exitError || len(lines) != 1 || !strings.Contains(errOut, "not migrated") ||
				!strings.Contains(errOut, "run syncd migrate") || strings.Contains(errOut, "does not exist") {
				t.Errorf("syncd %s exited %d:\nstdout: %s\nstderr: %s", args[0], code, out, errOut)
			}
		})
	}
	if h.writes() != 0 {
		t.Errorf("%d writes reached Sinch", h.writes())
	}
	h.migrate()
	if code, out, errOut := h.run("status"); code != 0 {
		t.Errorf("status after migrate exited %d: %s%s", code, out, errOut)
	}
}

// Each migration applied is said once: on stdout, not again in a log line.
func TestMigratePrintsEachMigrationOnce(t *testing.T) {
	h := newHarness(t)
	h.env["SYNCD_DATABASE_URL"] = statetest.NewEmptyDatabase(t)
	h.env["SYNCD_LOG_LEVEL"] = "info"
	code, out, errOut := h.run("migrate")
	if code != 0 {
		t.Fatalf("migrate exited %d:\n%s%s", code, out, errOut)
	}
	if n := strings.Count(out+errOut, "00001_crm_contacts.sql"); n != 1 {
		t.Errorf("the first migration is named %d times:\n%s%s", n, out, errOut)
	}
}
