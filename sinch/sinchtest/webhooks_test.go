package sinchtest_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/sinch/sinchtest"
	"github.com/syncd/syncd/webhook"
)

func webhookClient(t *testing.T) (*sinchtest.Emulator, *sinch.Client) {
	t.Helper()
	emu, _, client := webhookRig(t)
	return emu, client
}

func webhookRig(t *testing.T) (*sinchtest.Emulator, *httptest.Server, *sinch.Client) {
	t.Helper()
	emu, srv := sinchtest.Start(t, sinchtest.Options{})
	client, err := sinch.NewClient(emu.ClientConfig(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	return emu, srv, client
}

func TestWebhooksAPI(t *testing.T) {
	_, srv, client := webhookRig(t)
	ctx := t.Context()
	w, err := client.CreateWebhook(ctx, sinch.Webhook{AppID: "app1", Target: "https://a.example/hook", Secret: "s", Triggers: webhook.Triggers()})
	if err != nil {
		t.Fatal(err)
	}
	if w.ID == "" || w.TargetType != "HTTP" || len(w.Triggers) != 5 {
		t.Errorf("created %+v", w)
	}
	got, err := client.GetWebhook(ctx, w.ID)
	if err != nil || got.Target != w.Target || got.Secret != "s" {
		t.Errorf("get: %+v, %v", got, err)
	}
	up, err := client.UpdateWebhook(ctx, w.ID, sinch.Webhook{Secret: "s2", Target: "ignored"}, []string{sinch.WebhookFieldSecret})
	if err != nil || up.Secret != "s2" || up.Target != w.Target {
		t.Errorf("update: %+v, %v", up, err)
	}

	refused := []struct {
		name string
		w    sinch.Webhook
	}{
		{"the same target", sinch.Webhook{AppID: "app1", Target: "https://a.example/hook"}},
		{"no app", sinch.Webhook{Target: "https://a.example/other"}},
		{"target too long", sinch.Webhook{AppID: "app1", Target: "https://a.example/" + strings.Repeat("x", sinch.MaxWebhookTargetLen)}},
		{"unknown trigger", sinch.Webhook{AppID: "app1", Target: "https://a.example/t", Triggers: []string{"CONTACT_TELEPORT"}}},
		{"unknown target type", sinch.Webhook{AppID: "app1", Target: "https://a.example/t", TargetType: "SMTP"}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			if tt.w.AppID == "" {
				// The client refuses it itself; ask the emulator directly.
				a := send(t, srv, http.MethodPost, projectPath+"/webhooks", `{"target":"https://a.example/other"}`)
				if a.status != http.StatusBadRequest {
					t.Errorf("status %d", a.status)
				}
				return
			}
			if _, err := client.CreateWebhook(ctx, tt.w); !isStatus(err, http.StatusBadRequest) {
				t.Errorf("err = %v, want a 400", err)
			}
		})
	}
	t.Run("at most five per app", func(t *testing.T) {
		for i := 2; i <= 5; i++ {
			if _, err := client.CreateWebhook(ctx, sinch.Webhook{AppID: "app1", Target: "https://a.example/" + string(rune('a'+i))}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := client.CreateWebhook(ctx, sinch.Webhook{AppID: "app1", Target: "https://a.example/sixth"}); !isStatus(err, http.StatusBadRequest) {
			t.Errorf("a sixth webhook: %v, want a 400", err)
		}
		if _, err := client.CreateWebhook(ctx, sinch.Webhook{AppID: "app2", Target: "https://a.example/hook"}); err != nil {
			t.Errorf("another app's webhook: %v", err)
		}
	})
	list, err := client.ListWebhooks(ctx, "app1")
	if err != nil || len(list) != 5 {
		t.Fatalf("list app1: %d, %v", len(list), err)
	}
	if err := client.DeleteWebhook(ctx, w.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := client.GetWebhook(ctx, w.ID); !sinch.IsNotFound(err) {
		t.Errorf("get after delete: %v", err)
	}
	if list, _ := client.ListWebhooks(ctx, "app1"); len(list) != 4 {
		t.Errorf("after delete app1 has %d", len(list))
	}
}

func isStatus(err error, status int) bool {
	var api *sinch.APIError
	return errors.As(err, &api) && api.HTTPStatus == status
}

// received collects verified callbacks.
type received struct {
	mu      sync.Mutex
	events  []webhook.Event
	nonces  map[string]bool
	bad     int
	reply   int
	secret  string
	srv     *httptest.Server
	replied chan struct{}
}

func newReceived(t *testing.T, secret string) *received {
	t.Helper()
	rv := &received{nonces: map[string]bool{}, secret: secret, reply: http.StatusOK, replied: make(chan struct{}, 1000)}
	rv.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		sig, err := webhook.ParseSignature(r.Header)
		if err == nil {
			err = sig.Verify([]byte(rv.secret), body, time.Now())
		}
		rv.mu.Lock()
		defer rv.mu.Unlock()
		if err != nil || rv.nonces[sig.Nonce] {
			rv.bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		rv.nonces[sig.Nonce] = true
		ev, err := webhook.ParseEvent(body)
		if err != nil {
			rv.bad++
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		rv.events = append(rv.events, ev)
		w.WriteHeader(rv.reply)
	}))
	t.Cleanup(rv.srv.Close)
	return rv
}

func (rv *received) triggers() []string {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	var out []string
	for _, ev := range rv.events {
		out = append(out, ev.Trigger)
	}
	return out
}

func idle(t *testing.T, emu *sinchtest.Emulator) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := emu.Idle(ctx); err != nil {
		t.Fatalf("callbacks still queued: %v (%+v)", err, emu.CallbackStats())
	}
}

// Every contact change, through the API or played as a person or as Sinch
// itself, is posted, signed, to the webhooks subscribed to its trigger.
func TestCallbacksForEveryContactChange(t *testing.T) {
	emu, client := webhookClient(t)
	ctx := t.Context()
	rv := newReceived(t, "hook-secret")
	if _, err := client.CreateWebhook(ctx, sinch.Webhook{AppID: "app", Target: rv.srv.URL, Secret: "hook-secret", Triggers: webhook.Triggers()}); err != nil {
		t.Fatal(err)
	}
	// A webhook without the contact triggers, and one that dismisses, get nothing.
	other := newReceived(t, "x")
	if _, err := client.CreateWebhook(ctx, sinch.Webhook{AppID: "app", Target: other.srv.URL, Secret: "x", Triggers: []string{"MESSAGE_INBOUND"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CreateWebhook(ctx, sinch.Webhook{AppID: "app", Target: other.srv.URL + "/d", TargetType: "DISMISS", Triggers: webhook.Triggers()}); err != nil {
		t.Fatal(err)
	}

	a, err := client.CreateContact(ctx, sinch.Contact{ExternalID: "crm-1", Language: "EN_US", ChannelIdentities: []sinch.ChannelIdentity{{Channel: "SMS", Identity: "+46732000001"}}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := client.CreateContact(ctx, sinch.Contact{Language: "EN_US", ChannelIdentities: []sinch.ChannelIdentity{{Channel: "WHATSAPP", Identity: "+46732000002"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.UpdateContact(ctx, a.ID, sinch.Contact{DisplayName: "Ann"}, []string{sinch.FieldDisplayName}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.MergeContacts(ctx, a.ID, b.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := emu.EditAsPerson(a.ID, func(c *sinch.Contact) { c.Email = "ann@example.com" }); err != nil {
		t.Fatal(err)
	}
	auto := emu.AutoCreate(sinch.ChannelIdentity{Channel: "SMS", Identity: "46732000009"})
	if err := emu.DeleteAsPerson(auto.ID); err != nil {
		t.Fatal(err)
	}
	if err := client.DeleteContact(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	idle(t, emu)

	want := []string{webhook.TriggerCreate, webhook.TriggerCreate, webhook.TriggerUpdate, webhook.TriggerMerge,
		webhook.TriggerUpdate, webhook.TriggerCreate, webhook.TriggerDelete, webhook.TriggerDelete}
	if got := rv.triggers(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("callbacks %v, want %v", got, want)
	}
	rv.mu.Lock()
	merge, edit, auto0 := rv.events[3], rv.events[4], rv.events[5]
	rv.mu.Unlock()
	if merge.Preserved == nil || merge.Preserved.ID != a.ID || merge.Deleted == nil || merge.Deleted.ID != b.ID {
		t.Errorf("merge event %+v", merge)
	}
	if edit.Contact.Email != "ann@example.com" || auto0.Contact.ExternalID != "" || auto0.Contact.Language != sinch.LanguageUnspecified {
		t.Errorf("edit %+v, auto-create %+v", edit.Contact, auto0.Contact)
	}
	if rv.bad != 0 || len(other.triggers()) != 0 || other.bad != 0 {
		t.Errorf("%d bad callbacks; the other webhooks got %v (%d bad)", rv.bad, other.triggers(), other.bad)
	}
	if ev := rv.events[0]; ev.ProjectID != sinchtest.DefaultProjectID || ev.AppID != "app" || ev.EventTime.IsZero() {
		t.Errorf("envelope %+v", ev)
	}
}

func TestCallbackFaults(t *testing.T) {
	tests := []struct {
		name   string
		faults sinchtest.CallbackFaults
		check  func(t *testing.T, rv *received, s sinchtest.CallbackStats)
	}{
		{"dropped", sinchtest.CallbackFaults{DropRate: 1}, func(t *testing.T, rv *received, s sinchtest.CallbackStats) {
			if n := len(rv.triggers()); n != 0 || s.Dropped != 3 {
				t.Errorf("%d received, stats %+v", n, s)
			}
		}},
		{"duplicated", sinchtest.CallbackFaults{DuplicateRate: 1}, func(t *testing.T, rv *received, s sinchtest.CallbackStats) {
			if n := len(rv.triggers()); n != 6 || s.Duplicated != 3 {
				t.Errorf("%d received, stats %+v", n, s)
			}
		}},
		{"reordered", sinchtest.CallbackFaults{ReorderRate: 1, Delay: 20 * time.Millisecond}, func(t *testing.T, rv *received, s sinchtest.CallbackStats) {
			if got := rv.triggers(); len(got) != 3 || got[0] == webhook.TriggerCreate && got[1] == webhook.TriggerUpdate && got[2] == webhook.TriggerDelete {
				t.Errorf("received %v, want the three out of order", got)
			}
		}},
		{"refused, retried", sinchtest.CallbackFaults{}, func(t *testing.T, rv *received, s sinchtest.CallbackStats) {
			if s.Failed != 3 || rv.bad != 0 || len(rv.triggers()) != 9 {
				t.Errorf("stats %+v, %d received (3 attempts each)", s, len(rv.triggers()))
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			emu, client := webhookClient(t)
			rv := newReceived(t, "s")
			if tt.name == "refused, retried" {
				rv.reply = http.StatusServiceUnavailable
			}
			if _, err := client.CreateWebhook(t.Context(), sinch.Webhook{AppID: "app", Target: rv.srv.URL, Secret: "s", Triggers: webhook.Triggers()}); err != nil {
				t.Fatal(err)
			}
			emu.SetCallbackFaults(tt.faults)
			c := emu.AutoCreate(sinch.ChannelIdentity{Channel: "SMS", Identity: "46732000001"})
			if _, err := emu.EditAsPerson(c.ID, func(c *sinch.Contact) { c.DisplayName = "X" }); err != nil {
				t.Fatal(err)
			}
			if err := emu.DeleteAsPerson(c.ID); err != nil {
				t.Fatal(err)
			}
			idle(t, emu)
			tt.check(t, rv, emu.CallbackStats())
		})
	}
}
