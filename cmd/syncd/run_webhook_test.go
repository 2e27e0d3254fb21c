package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/webhook"
)

// postCallback posts body to the daemon's webhook, signed with secret (none
// when empty), and returns the status.
func postCallback(t *testing.T, d *daemonHandle, secret, nonce string, body []byte) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+d.webhook+"/webhooks/sinch", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if secret != "" {
		webhook.Sign(req.Header, []byte(secret), body, nonce, time.Now())
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

func (h *harness) storedEvents() int {
	h.t.Helper()
	var n int
	if err := h.store.DB().Raw(`SELECT count(*) FROM syncd.webhook_events`).Scan(&n).Error; err != nil {
		h.t.Fatal(err)
	}
	return n
}

func TestRunReceivesWebhooks(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	h.env["SYNCD_WEBHOOK_SECRET"] = "hook-secret"
	h.setConfig(daemonConfig("schedule:\n  incremental: '@every 1h'\n  full: '@every 1h'\nwebhook:\n  listen: 127.0.0.1:0\n"))
	d := h.startDaemon()
	if d.webhook == "" || d.webhook == d.addr {
		t.Fatalf("webhook address %q (http %q)", d.webhook, d.addr)
	}
	body := []byte(`{"project_id":"p1","event_time":"2026-12-01T10:00:00Z","contact_update_notification":{"contact":{"id":"C1"}}}`)
	if got := postCallback(t, d, "wrong", "n1", body); got != http.StatusUnauthorized {
		t.Errorf("forged: %d, want 401", got)
	}
	if got := postCallback(t, d, "", "", body); got != http.StatusUnauthorized {
		t.Errorf("unsigned: %d, want 401", got)
	}
	if n := h.storedEvents(); n != 0 {
		t.Fatalf("%d events stored after refused callbacks", n)
	}
	if got := postCallback(t, d, "hook-secret", "n2", body); got != http.StatusOK {
		t.Fatalf("signed: %d, want 200\n%s", got, d.stderr)
	}
	if n := h.storedEvents(); n != 1 {
		t.Errorf("%d events stored, want 1", n)
	}
	// The metrics stay on http.listen, not on the webhook's address.
	if got := httpStatus(t, "http://"+d.webhook+"/metrics"); got != http.StatusNotFound {
		t.Errorf("GET /metrics on the webhook listener: %d, want 404", got)
	}
}

func TestWebhookConfigProblems(t *testing.T) {
	tests := []struct {
		name string
		w    WebhookConfig
		want int
	}{
		{"off", WebhookConfig{Path: "/webhooks/sinch"}, 0},
		{"on with a secret", WebhookConfig{Listen: "127.0.0.1:8789", Path: "/x", Secret: "s", PublicURL: "https://sync.example.com/x"}, 0},
		{"on without a secret", WebhookConfig{Listen: "127.0.0.1:8789", Path: "/x"}, 1},
		{"bad listen", WebhookConfig{Listen: "8789", Path: "/x", Secret: "s"}, 1},
		{"relative path", WebhookConfig{Path: "x"}, 1},
		{"bad public URL", WebhookConfig{Path: "/x", PublicURL: "sync.example.com"}, 1},
		{"public URL too long", WebhookConfig{Path: "/x", PublicURL: "https://a.example/" + string(bytes.Repeat([]byte("a"), 740))}, 1},
		{"nothing in flight", WebhookConfig{Path: "/x", MaxInFlight: -1}, 1},
		{"no body timeout", WebhookConfig{Path: "/x", BodyTimeout: -time.Second}, 1},
		{"body timeout too long", WebhookConfig{Path: "/x", BodyTimeout: 2 * time.Minute}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Unset bounds are the defaults, as in a configuration.
			tt.w.MaxInFlight = cmp.Or(tt.w.MaxInFlight, webhook.DefaultMaxInFlight)
			tt.w.BodyTimeout = cmp.Or(tt.w.BodyTimeout, webhook.DefaultBodyTimeout)
			if got := tt.w.problems(); len(got) != tt.want {
				t.Errorf("problems = %v, want %d", got, tt.want)
			}
		})
	}
}

// A managed field edited in Sinch is put back by the daemon once the
// callback comes, with one write, and without waiting for a tick.
func TestRunPutsBackASinchEditOnCallback(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	h.load(crmRows(5))
	h.env["SYNCD_WEBHOOK_SECRET"] = "hook-secret"
	h.setConfig(daemonConfig("schedule:\n  incremental: '@every 1h'\n  full: '@every 1h'\nwebhook:\n  listen: 127.0.0.1:0\n"))
	d := h.startDaemon()
	eventually(t, "the first run mirrors the CRM", func() bool { return len(h.emu.Contacts()) == 5 })
	eventually(t, "the first run has finished", func() bool {
		var n int
		h.store.DB().Raw(`SELECT count(*) FROM syncd.runs WHERE outcome <> 'running'`).Scan(&n)
		return n >= 1
	})

	c := h.byExternalID()["crm-0003"][0]
	c.DisplayName = "Edited In The Dashboard"
	h.emu.Seed(c) // a person's edit, not syncd's
	h.emu.ResetCalls()
	body, err := json.Marshal(map[string]any{"project_id": "p1", "event_time": time.Now().UTC().Format(time.RFC3339Nano),
		"contact_update_notification": map[string]any{"contact": c}})
	if err != nil {
		t.Fatal(err)
	}
	if got := postCallback(t, d, "hook-secret", "edit-1", body); got != http.StatusOK {
		t.Fatalf("callback: %d", got)
	}
	eventually(t, "the edit is put back", func() bool {
		cs := h.byExternalID()["crm-0003"]
		return len(cs) == 1 && cs[0].DisplayName == "Person 3"
	})
	eventually(t, "the event is done", func() bool {
		var n int
		h.store.DB().Raw(`SELECT count(*) FROM syncd.webhook_events WHERE done_at IS NULL`).Scan(&n)
		return n == 0
	})
	// The run records its end after it marks the events done.
	eventually(t, "the event run is counted", func() bool {
		return strings.Contains(httpGet(t, "http://"+d.addr+"/metrics"), `syncd_runs_total{kind="event",outcome="succeeded",project="default"} 1`)
	})
	if n := h.writes(); n != 1 {
		t.Errorf("%d writes, want 1 (%v)", n, h.emu.CallCounts())
	}
	metricsText := httpGet(t, "http://"+d.addr+"/metrics")
	for _, want := range []string{
		`syncd_webhook_events_received_total{project="default",trigger="CONTACT_UPDATE"} 1`,
		`syncd_webhook_events_applied_total{project="default",trigger="CONTACT_UPDATE"} 1`,
		`syncd_webhook_event_lag_seconds_count{project="default"} 1`,
		`syncd_runs_total{kind="event",outcome="succeeded",project="default"} 1`,
	} {
		if !strings.Contains(metricsText, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// A callback received by another process, one that does not hold the
// project lock (a second syncd behind the same load balancer, a standby),
// wakes the daemon at once: the stored event's NOTIFY reaches it, and it
// puts the edit back with one write, although no callback came to its own
// webhook and no tick falls due.
func TestRunProcessesEventsAnotherProcessStored(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	h.load(crmRows(5))
	if code, out, errOut := h.run("backfill"); code != 0 {
		t.Fatalf("backfill exited %d:\n%s%s", code, out, errOut)
	}

	// The other process: a webhook receiver on the same database.
	other := webhook.NewHandler(webhook.Config{Secret: "hook-secret", ProjectID: "p1",
		Store: webhook.NewStore(h.store.Events()), Logger: zaptest.NewLogger(t)})
	storing, stopStoring := context.WithCancel(context.Background())
	storerDone := make(chan struct{})
	go func() { defer close(storerDone); other.Run(storing) }()
	srv := httptest.NewServer(other)
	t.Cleanup(func() { srv.Close(); stopStoring(); <-storerDone })

	h.env["SYNCD_SINCH_APP_ID"] = "app1"
	h.env["SYNCD_WEBHOOK_SECRET"] = "hook-secret"
	h.setConfig(daemonConfig("schedule:\n  incremental: '@every 1h'\n  full: '@every 1h'\nwebhook:\n  listen: 127.0.0.1:0\n" +
		"  public_url: " + srv.URL + "/webhooks/sinch\n"))
	if code, out, errOut := h.run("webhooks", "register"); code != 0 {
		t.Fatalf("register exited %d:\n%s%s", code, out, errOut)
	}
	d := h.startDaemon()
	eventually(t, "the daemon's first run has finished", func() bool {
		var n int
		h.store.DB().Raw(`SELECT count(*) FROM syncd.runs WHERE kind = 'incremental' AND outcome <> 'running'`).Scan(&n)
		return n >= 1
	})

	id := h.byExternalID()["crm-0003"][0].ID
	h.emu.ResetCalls()
	if _, err := h.emu.EditAsPerson(id, func(c *sinch.Contact) { c.DisplayName = "Edited In The Dashboard" }); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the edit is put back", func() bool {
		cs := h.byExternalID()["crm-0003"]
		return len(cs) == 1 && cs[0].DisplayName == "Person 3"
	})
	// The echo of syncd's patch goes the same way, and costs no write.
	h.waitCallbacks()
	eventually(t, "every event is done", func() bool {
		pending, _, total := h.queued()
		return pending == 0 && total == 2
	})
	if n := h.writes(); n != 1 {
		t.Errorf("%d writes, want 1 (%v)", n, h.emu.CallCounts())
	}
	for _, line := range strings.Split(httpGet(t, "http://"+d.addr+"/metrics"), "\n") {
		if strings.HasPrefix(line, "syncd_webhook_events_received_total{") && !strings.HasSuffix(line, " 0") {
			t.Errorf("the daemon's own webhook received callbacks (%s); the test means the other process to", line)
		}
	}
	var lag []struct{ Started, Done float64 }
	h.store.DB().Raw(`SELECT extract(epoch FROM r.started_at - e.received_at) AS started,
			extract(epoch FROM e.done_at - e.received_at) AS done
		FROM syncd.webhook_events e JOIN syncd.runs r ON r.id = e.run_id ORDER BY e.id`).Scan(&lag)
	t.Logf("stored by the other process, then (run started, event done) after: %+v seconds", lag)
}
