package main

import (
	"os"
	"strings"
	"testing"

	"github.com/syncd/syncd/sinch/sinchtest"
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

// The webhook commands act on --project's Sinch project, and refuse to
// guess among several.
func TestWebhooksListOfAProject(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	us := h.twoProjects("")
	cfg, err := os.ReadFile(h.config)
	if err != nil {
		t.Fatal(err)
	}
	h.setConfig(strings.Replace(string(cfg), "    sinch:\n", "    sinch:\n      app_id: app-us\n", 1))
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"webhooks", "list"}, exitError, "syncd: the configuration names several projects (eu, us): say which with --project\n"},
		{[]string{"--project", "eu", "webhooks", "list"}, exitError, "syncd: projects[eu].sinch.app_id is required for this command\n"},
		{[]string{"--project", "us", "webhooks", "list"}, 0, "App app-us has no webhooks.\n"},
	}
	for _, tc := range tests {
		code, out, errOut := h.run(tc.args...)
		if code != tc.code || out+errOut != tc.want {
			t.Errorf("%v exited %d, want %d and %q:\n%s%s", tc.args, code, tc.code, tc.want, out, errOut)
		}
	}
	if us.CallCounts()[sinchtest.OpWebhookList] != 1 || h.emu.CallCounts()[sinchtest.OpWebhookList] != 0 {
		t.Errorf("webhook lists: us %d, eu %d; want us's one", us.CallCounts()[sinchtest.OpWebhookList], h.emu.CallCounts()[sinchtest.OpWebhookList])
	}
}
