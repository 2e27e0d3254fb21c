package main

import (
	"strings"
	"testing"

	"github.com/syncd/syncd/crm/crmtest"
)

func TestConfigCheck(t *testing.T) {
	h := newHarness(t)

	migrated := h.env["SYNCD_DATABASE_URL"]
	h.env["SYNCD_DATABASE_URL"] = crmtest.NewEmptyDatabase(t)
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
