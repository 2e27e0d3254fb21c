package main

import (
	"strings"
	"testing"
)

func TestConfigCheckRemoteWebhook(t *testing.T) {
	h := webhookHarness(t)
	h.migrate()
	code, out, _ := h.run("config", "check", "--remote")
	if code != exitError || !strings.Contains(out, "has no webhook") || !strings.Contains(out, "syncd webhooks register") {
		t.Errorf("before register: exit %d\n%s", code, out)
	}
	if code, out, errOut := h.run("webhooks", "register"); code != 0 {
		t.Fatalf("register: %s%s", out, errOut)
	}
	code, out, _ = h.run("config", "check", "--remote")
	if code != 0 || !strings.Contains(out, "posts the contact triggers") {
		t.Errorf("after register: exit %d\n%s", code, out)
	}
	h.env["SYNCD_WEBHOOK_SECRET"] = "rotated"
	code, out, _ = h.run("config", "check", "--remote")
	if code != exitError || !strings.Contains(out, "another secret") || strings.Contains(out, "rotated") || strings.Contains(out, "hook-secret-value") {
		t.Errorf("with a rotated secret: exit %d\n%s", code, out)
	}
	// Without --remote the webhook is not looked at.
	if code, out, _ := h.run("config", "check"); code != 0 || strings.Contains(out, "webhook") {
		t.Errorf("without --remote: exit %d\n%s", code, out)
	}
}
