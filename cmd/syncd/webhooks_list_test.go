package main

import (
	"strings"
	"testing"
)

func TestWebhooksList(t *testing.T) {
	h := webhookHarness(t)
	code, out, _ := h.run("webhooks", "list")
	if code != 0 || !strings.Contains(out, "App app1 has no webhooks") {
		t.Errorf("list with none exited %d: %s", code, out)
	}
	if code, out, errOut := h.run("webhooks", "register"); code != 0 {
		t.Fatalf("register: %s%s", out, errOut)
	}
	code, out, _ = h.run("webhooks", "list")
	if code != 0 || !strings.Contains(out, "https://sync.example.com/webhooks/sinch") || !strings.Contains(out, "CONTACT_MERGE") {
		t.Errorf("list exited %d:\n%s", code, out)
	}
	if strings.Contains(out, "hook-secret-value") {
		t.Errorf("list prints the secret:\n%s", out)
	}
}
