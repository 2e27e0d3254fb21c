package main

import (
	"strings"
	"testing"

	"github.com/syncd/syncd/sinch"
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

// config check --remote reads sinch.app_id's app and says what to change
// when its processing mode keeps no contacts.
func TestConfigCheckRemoteProcessingMode(t *testing.T) {
	h := webhookHarness(t)
	h.migrate()
	if code, out, errOut := h.run("webhooks", "register"); code != 0 {
		t.Fatalf("register: %s%s", out, errOut)
	}
	h.emu.PutApp(sinch.App{ID: "app1"}) // DISPATCH, Sinch's default for a new app
	code, out, _ := h.run("config", "check", "--remote")
	if code != exitError || !strings.Contains(out, "✗ sinch.app_id: app app1 is in DISPATCH processing mode") ||
		!strings.Contains(out, "update_mask=processing_mode") || !strings.Contains(out, "Set its processing mode to CONVERSATION") {
		t.Errorf("a DISPATCH app: exit %d\n%s", code, out)
	}
	h.emu.PutApp(sinch.App{ID: "app1", ProcessingMode: sinch.ProcessingModeConversation})
	if code, out, _ := h.run("config", "check", "--remote"); code != 0 || !strings.Contains(out, "✓ sinch.app_id: app app1 is in CONVERSATION processing mode") {
		t.Errorf("a CONVERSATION app: exit %d\n%s", code, out)
	}
	h.env["SYNCD_SINCH_APP_ID"] = "no-such-app"
	if code, out, _ := h.run("config", "check", "--remote"); code != exitError || !strings.Contains(out, "has no app no-such-app") {
		t.Errorf("an unknown app: exit %d\n%s", code, out)
	}
}
