package sinchtest_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
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
	mu     sync.Mutex
	events []webhook.Event
	bodies [][]byte // raw, as posted
	auth   []string // the Authorization header of each
	// bearer, when set, is the only Authorization a callback may carry.
	bearer  string
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
		if rv.bearer != "" && r.Header.Get("Authorization") != "Bearer "+rv.bearer {
			rv.bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
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
		rv.bodies = append(rv.bodies, body)
		rv.auth = append(rv.auth, r.Header.Get("Authorization"))
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

// hooked is an emulator whose one webhook posts every contact trigger to a
// receiver.
func hooked(t *testing.T) (*sinchtest.Emulator, *sinch.Client, *received) {
	t.Helper()
	emu, client := webhookClient(t)
	rv := newReceived(t, "s")
	if _, err := client.CreateWebhook(t.Context(), sinch.Webhook{AppID: "app", Target: rv.srv.URL, Secret: "s", Triggers: webhook.Triggers()}); err != nil {
		t.Fatal(err)
	}
	return emu, client, rv
}

// A create or an update that leaves two contacts sharing an identity is
// followed by CONTACT_IDENTITIES_DUPLICATION, in the wire form of the
// Java SDK's fixture ContactIdentitiesDuplicationEventDto.json, naming every
// contact that holds the identity; a write that brings no shared identity
// is not.
func TestDuplicationCallbacks(t *testing.T) {
	emu, client, rv := hooked(t)
	ctx := t.Context()
	create := func(ids ...sinch.ChannelIdentity) *sinch.Contact {
		t.Helper()
		c, err := client.CreateContact(ctx, sinch.Contact{Language: "EN_US", ChannelIdentities: ids})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := create(sms("+46732000001"))
	b := create(sms("+46732000001"), sinch.ChannelIdentity{Channel: "WHATSAPP", Identity: "+46732000002"})
	c := create(sinch.ChannelIdentity{Channel: "WHATSAPP", Identity: "+46732000003"})
	// An update that brings c both of b's identities, and one that changes
	// only a name.
	if _, err := client.UpdateContact(ctx, c.ID, sinch.Contact{ChannelIdentities: append(b.ChannelIdentities, c.ChannelIdentities...)},
		[]string{sinch.FieldChannelIdentities}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.UpdateContact(ctx, c.ID, sinch.Contact{DisplayName: "C"}, []string{sinch.FieldDisplayName}); err != nil {
		t.Fatal(err)
	}
	// A person's edit and Sinch's auto-create are reported alike; the same
	// number on another channel is no duplicate.
	if _, err := emu.EditAsPerson(a.ID, func(x *sinch.Contact) {
		x.ChannelIdentities = append(x.ChannelIdentities, sinch.ChannelIdentity{Channel: "WHATSAPP", Identity: "46732000003"})
	}); err != nil {
		t.Fatal(err)
	}
	emu.AutoCreate(sinch.ChannelIdentity{Channel: "MMS", Identity: "46732000001"})
	idle(t, emu)

	want := []string{webhook.TriggerCreate, webhook.TriggerCreate, webhook.TriggerDuplication, webhook.TriggerCreate,
		webhook.TriggerUpdate, webhook.TriggerDuplication, webhook.TriggerUpdate, webhook.TriggerUpdate, webhook.TriggerDuplication,
		webhook.TriggerCreate}
	if got := rv.triggers(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("callbacks %v, want %v", got, want)
	}
	rv.mu.Lock()
	defer rv.mu.Unlock()
	sorted := func(ids ...string) []string { return slices.Sorted(slices.Values(ids)) }
	wantDups := map[int][]webhook.DuplicatedIdentity{
		2: {{Channel: "SMS", ContactIDs: sorted(a.ID, b.ID)}},
		5: {{Channel: "SMS", ContactIDs: sorted(a.ID, b.ID, c.ID)}, {Channel: "WHATSAPP", ContactIDs: sorted(b.ID, c.ID)}},
		8: {{Channel: "WHATSAPP", ContactIDs: sorted(a.ID, c.ID)}},
	}
	for i, want := range wantDups {
		if got := rv.events[i].Duplicated; !reflect.DeepEqual(got, want) {
			t.Errorf("callback %d names %+v, want %+v", i, got, want)
		}
	}
	var wire map[string]json.RawMessage
	if err := json.Unmarshal(rv.bodies[2], &wire); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"app_id", "project_id", "accepted_time", "event_time", "message_metadata", "correlation_id", "duplicated_contact_identities_notification"} {
		if _, ok := wire[k]; !ok {
			t.Errorf("callback %s lacks %q", rv.bodies[2], k)
		}
	}
	var n struct {
		Duplicated []map[string]json.RawMessage `json:"duplicated_identities"`
	}
	if err := json.Unmarshal(wire["duplicated_contact_identities_notification"], &n); err != nil || len(n.Duplicated) != 1 || len(n.Duplicated[0]) != 2 {
		t.Errorf("notification %s: %v", wire["duplicated_contact_identities_notification"], err)
	}
}

// A webhook's client_credentials are taken, answered back, and used: each
// callback carries a bearer token fetched from the credentials' endpoint
// (client id and secret in HTTP Basic, or in the form), kept for its
// expires_in rather than fetched per callback.
func TestWebhookClientCredentials(t *testing.T) {
	for _, requestType := range []string{"", "BASIC", "FORM"} {
		t.Run("token_request_type "+cmp.Or(requestType, "unset"), func(t *testing.T) {
			emu, srv, client := webhookRig(t)
			rv := newReceived(t, "s")
			rv.bearer = "callback-token"
			var mu sync.Mutex
			var tokenRequests []url.Values
			tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if err := r.ParseForm(); err != nil {
					t.Error(err)
				}
				id, secret, basic := r.BasicAuth()
				if !basic {
					id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
				}
				mu.Lock()
				tokenRequests = append(tokenRequests, r.PostForm)
				mu.Unlock()
				if id != "cid" || secret != "csecret" || basic == (requestType == "FORM") || r.PostForm.Get("grant_type") != "client_credentials" {
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				fmt.Fprint(w, `{"access_token":"callback-token","expires_in":3600,"token_type":"bearer"}`)
			}))
			t.Cleanup(tokens.Close)
			body := fmt.Sprintf(`{"app_id":"app","target":%q,"secret":"s","triggers":["CONTACT_CREATE"],`+
				`"client_credentials":{"client_id":"cid","client_secret":"csecret","endpoint":%q,"scope":"callbacks","token_request_type":%q}}`,
				rv.srv.URL, tokens.URL, requestType)
			a := send(t, srv, http.MethodPost, projectPath+"/webhooks", body)
			if a.status != http.StatusOK {
				t.Fatalf("create: %d %s", a.status, a.body)
			}
			var created struct {
				ID                string                       `json:"id"`
				ClientCredentials *sinchtest.ClientCredentials `json:"client_credentials"`
			}
			if err := json.Unmarshal(a.body, &created); err != nil || created.ClientCredentials == nil || created.ClientCredentials.Endpoint != tokens.URL {
				t.Fatalf("answer %s: %v", a.body, err)
			}
			for i := range 3 {
				if _, err := client.CreateContact(t.Context(), validContact(fmt.Sprint("x", i))); err != nil {
					t.Fatal(err)
				}
			}
			idle(t, emu)
			if got := rv.triggers(); len(got) != 3 || rv.bad != 0 {
				t.Errorf("received %v, %d refused", got, rv.bad)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(tokenRequests) != 1 || tokenRequests[0].Get("scope") != "callbacks" {
				t.Errorf("token requests %v, want one with the scope", tokenRequests)
			}
		})
	}
	t.Run("refused when incomplete", func(t *testing.T) {
		_, srv, _ := webhookRig(t)
		for _, creds := range []string{`{"client_id":"c","client_secret":"s"}`, `{"client_id":"c","endpoint":"https://a.example/t"}`,
			`{"client_id":"c","client_secret":"s","endpoint":"not a url"}`, `{"client_id":"c","client_secret":"s","endpoint":"https://a.example/t","grant":"x"}`} {
			a := send(t, srv, http.MethodPost, projectPath+"/webhooks", `{"app_id":"app","target":"https://a.example/hook","client_credentials":`+creds+`}`)
			if a.status != http.StatusBadRequest {
				t.Errorf("client_credentials %s: %d, want 400", creds, a.status)
			}
		}
	})
}

// An update moves a webhook to another app when it says so, with an
// update_mask or without one, within the other app's five.
func TestWebhookUpdateAppID(t *testing.T) {
	emu, srv, client := webhookRig(t)
	ctx := t.Context()
	w, err := client.CreateWebhook(ctx, sinch.Webhook{AppID: "app1", Target: "https://a.example/hook"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.UpdateWebhook(ctx, w.ID, sinch.Webhook{AppID: "app2"}, []string{sinch.WebhookFieldAppID}); err != nil {
		t.Fatal(err)
	}
	if list, _ := client.ListWebhooks(ctx, "app2"); len(list) != 1 || list[0].ID != w.ID {
		t.Errorf("app2's webhooks %+v", list)
	}
	if a := send(t, srv, http.MethodPatch, projectPath+"/webhooks/"+w.ID, `{"app_id":"app3"}`); a.status != http.StatusOK {
		t.Fatalf("update without a mask: %d %s", a.status, a.body)
	}
	if got := emu.Webhooks(); len(got) != 1 || got[0].AppID != "app3" {
		t.Errorf("webhooks %+v", got)
	}
	for i := range sinch.MaxWebhooksPerApp {
		if _, err := client.CreateWebhook(ctx, sinch.Webhook{AppID: "full", Target: fmt.Sprintf("https://a.example/%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := client.UpdateWebhook(ctx, w.ID, sinch.Webhook{AppID: "full"}, []string{sinch.WebhookFieldAppID}); !isStatus(err, http.StatusBadRequest) {
		t.Errorf("a move into an app with five: %v, want a 400", err)
	}
}

// A target on the Conversation API's own hosts is refused, on create and
// on update.
func TestWebhookTargetOnSinchHosts(t *testing.T) {
	_, _, client := webhookRig(t)
	ctx := t.Context()
	for _, target := range []string{"https://us.conversation.api.sinch.com/v1/projects/p/webhooks", "https://EU.Conversation.API.Sinch.com./x",
		"https://conversation-api.eu1.sinch.com/hook", "http://conversation-api.prod.sinch.com:8080/"} {
		if _, err := client.CreateWebhook(ctx, sinch.Webhook{AppID: "app", Target: target}); !isStatus(err, http.StatusBadRequest) {
			t.Errorf("target %s: %v, want a 400", target, err)
		}
	}
	w, err := client.CreateWebhook(ctx, sinch.Webhook{AppID: "app", Target: "https://hooks.sinch.example.com/x"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.UpdateWebhook(ctx, w.ID, sinch.Webhook{Target: "https://br.conversation.api.sinch.com/x"}, []string{sinch.WebhookFieldTarget}); !isStatus(err, http.StatusBadRequest) {
		t.Errorf("update onto a Sinch host: %v, want a 400", err)
	}
}

// Callback bodies and answers carry &, < and > as they are, as Sinch
// sends them, so that a receiver that checks the signature over its parsed
// body serialised again (JSON.stringify) finds the same bytes.
func TestCallbackBodiesAreNotHTMLEscaped(t *testing.T) {
	emu, srv, client := webhookRig(t)
	rv := newReceived(t, "s")
	if _, err := client.CreateWebhook(t.Context(), sinch.Webhook{AppID: "app", Target: rv.srv.URL, Secret: "s", Triggers: webhook.Triggers()}); err != nil {
		t.Fatal(err)
	}
	c := validContact("x")
	c.DisplayName = "Smith & Sons <Ltd>"
	a := send(t, srv, http.MethodPost, projectPath+"/contacts", mustJSON(t, c))
	if !bytes.Contains(a.body, []byte(c.DisplayName)) {
		t.Errorf("answer %s escapes the name", a.body)
	}
	idle(t, emu)
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if len(rv.bodies) != 1 || !bytes.Contains(rv.bodies[0], []byte(`"display_name":"Smith & Sons <Ltd>"`)) {
		t.Errorf("callbacks %q", rv.bodies)
	}
}
