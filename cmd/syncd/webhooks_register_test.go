package main

import (
	"strings"
	"testing"

	"github.com/syncd/syncd/sinch"

	"github.com/syncd/syncd/sinch/sinchtest"
	"github.com/syncd/syncd/webhook"
)

// webhookHarness is a harness configured for the webhook commands.
func webhookHarness(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t)
	h.env["SYNCD_SINCH_APP_ID"] = "app1"
	h.emu.PutApp(sinch.App{ID: "app1", ProcessingMode: sinch.ProcessingModeConversation})
	h.env["SYNCD_WEBHOOK_SECRET"] = "hook-secret-value"
	h.setConfig("webhook:\n  public_url: https://sync.example.com/webhooks/sinch\n")
	return h
}

func TestWebhooksRegister(t *testing.T) {
	h := webhookHarness(t)
	code, out, errOut := h.run("webhooks", "register")
	if code != 0 || !strings.Contains(out, "created webhook") {
		t.Fatalf("register exited %d:\n%s%s", code, out, errOut)
	}
	hooks := h.emu.Webhooks()
	if len(hooks) != 1 {
		t.Fatalf("%d webhooks, want 1", len(hooks))
	}
	w := hooks[0]
	if w.AppID != "app1" || w.Target != "https://sync.example.com/webhooks/sinch" || w.Secret != "hook-secret-value" ||
		w.TargetType != "HTTP" || !sameSet(w.Triggers, webhook.Triggers()) {
		t.Errorf("registered %+v", w)
	}

	// Twice leaves one, unchanged, with no write.
	h.emu.ResetCalls()
	code, out, _ = h.run("webhooks", "register")
	if code != 0 || !strings.Contains(out, "is registered") {
		t.Errorf("second register exited %d: %s", code, out)
	}
	if n := len(h.emu.Webhooks()); n != 1 {
		t.Errorf("%d webhooks after registering twice", n)
	}
	if n := h.emu.Calls(sinchtest.OpWebhookCreate) + h.emu.Calls(sinchtest.OpWebhookUpdate); n != 0 {
		t.Errorf("the second register wrote %d times", n)
	}

	// A new secret updates the same webhook, and is never printed.
	h.env["SYNCD_WEBHOOK_SECRET"] = "rotated-secret"
	code, out, errOut = h.run("webhooks", "register")
	if code != 0 || !strings.Contains(out, "updated webhook "+w.ID) {
		t.Errorf("register after a rotation exited %d: %s%s", code, out, errOut)
	}
	if strings.Contains(out+errOut, "rotated-secret") {
		t.Errorf("the secret was printed: %s%s", out, errOut)
	}
	if hooks := h.emu.Webhooks(); len(hooks) != 1 || hooks[0].Secret != "rotated-secret" || hooks[0].ID != w.ID {
		t.Errorf("after rotation: %+v", hooks)
	}
}

func TestWebhooksRegisterNeedsItsKeys(t *testing.T) {
	for _, key := range []string{"SYNCD_SINCH_APP_ID", "SYNCD_WEBHOOK_SECRET"} {
		t.Run(key, func(t *testing.T) {
			h := webhookHarness(t)
			delete(h.env, key)
			code, _, errOut := h.run("webhooks", "register")
			want := map[string]string{"SYNCD_SINCH_APP_ID": "sinch.app_id", "SYNCD_WEBHOOK_SECRET": "webhook.secret"}[key]
			if code != exitError || !strings.Contains(errOut, want) {
				t.Errorf("exit %d, stderr %q; want 1 naming %s", code, errOut, want)
			}
			if n := len(h.emu.Webhooks()); n != 0 {
				t.Errorf("%d webhooks created", n)
			}
		})
	}
}
