package main

import (
	"strings"
	"testing"
)

func TestWebhooksDelete(t *testing.T) {
	h := webhookHarness(t)
	code, _, errOut := h.run("webhooks", "delete")
	if code != exitError || !strings.Contains(errOut, "no webhook") {
		t.Errorf("delete with none exited %d: %s", code, errOut)
	}
	for range 2 {
		if code, out, errOut := h.run("webhooks", "register"); code != 0 {
			t.Fatalf("register: %s%s", out, errOut)
		}
	}
	id := h.emu.Webhooks()[0].ID
	code, out, errOut := h.run("webhooks", "delete")
	if code != 0 || !strings.Contains(out, "deleted webhook "+id) {
		t.Errorf("delete exited %d: %s%s", code, out, errOut)
	}
	if n := len(h.emu.Webhooks()); n != 0 {
		t.Errorf("%d webhooks left", n)
	}

	// By id.
	if code, out, errOut := h.run("webhooks", "register"); code != 0 {
		t.Fatalf("register: %s%s", out, errOut)
	}
	id = h.emu.Webhooks()[0].ID
	if code, out, errOut := h.run("webhooks", "delete", id); code != 0 {
		t.Errorf("delete %s exited %d: %s%s", id, code, out, errOut)
	}
	if n := len(h.emu.Webhooks()); n != 0 {
		t.Errorf("%d webhooks left", n)
	}
}
