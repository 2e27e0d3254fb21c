package sinch_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/sinch/sinchtest"
)

func TestNewClientConfig(t *testing.T) {
	valid := func() sinch.Config { return sinch.Config{ProjectID: "p", KeyID: "k", KeySecret: testSecret} }
	tests := []struct {
		name     string
		change   func(*sinch.Config)
		wantErr  string
		wantBase string
	}{
		{"defaults to us", func(*sinch.Config) {}, "", "https://us.conversation.api.sinch.com/v1/projects/p"},
		{"eu", func(c *sinch.Config) { c.Region = "eu" }, "", "https://eu.conversation.api.sinch.com/v1/projects/p"},
		{"br", func(c *sinch.Config) { c.Region = "br" }, "", "https://br.conversation.api.sinch.com/v1/projects/p"},
		{"base URL wins", func(c *sinch.Config) { c.BaseURL = "http://127.0.0.1:9/" }, "", "http://127.0.0.1:9/v1/projects/p"},
		{"oauth2", func(c *sinch.Config) { c.Auth = sinch.AuthOAuth2 }, "", "https://us.conversation.api.sinch.com/v1/projects/p"},
		{"unknown region", func(c *sinch.Config) { c.Region = "apac" }, "region", ""},
		{"unknown region with a base URL", func(c *sinch.Config) { c.Region = "mars"; c.BaseURL = "http://x" }, "region", ""},
		{"no project", func(c *sinch.Config) { c.ProjectID = "" }, "project", ""},
		{"no key id", func(c *sinch.Config) { c.KeyID = "" }, "key", ""},
		{"no secret", func(c *sinch.Config) { c.KeySecret = "" }, "secret", ""},
		{"unknown auth", func(c *sinch.Config) { c.Auth = "digest" }, "auth", ""},
		{"negative rate", func(c *sinch.Config) { c.RateLimitRPS = -1 }, "rate", ""},
		{"base URL not http", func(c *sinch.Config) { c.BaseURL = "ftp://x" }, "base URL", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid()
			tt.change(&cfg)
			c, err := sinch.NewClient(cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one about %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := sinch.BaseURL(c); got != tt.wantBase {
				t.Errorf("base %q, want %q", got, tt.wantBase)
			}
		})
	}
}

func TestOperations(t *testing.T) {
	e := newEnv(t, sinchtest.Options{})
	c, ctx := e.client, t.Context()

	created, err := c.CreateContact(ctx, sinch.Contact{
		ChannelIdentities: []sinch.ChannelIdentity{sms("+46732000000"), {Channel: "MESSENGER", Identity: "796", AppID: "app"}},
		Language:          "EN_US",
		ExternalID:        "crm-1",
		Email:             "jane@example.com",
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ulid.ParseStrict(created.ID); err != nil {
		t.Errorf("id %q: %v", created.ID, err)
	}
	if created.ChannelIdentities[0].Identity != "46732000000" || created.DisplayName != "Unknown" {
		t.Errorf("created %+v: not as Sinch stores it", created)
	}

	got, err := c.GetContact(ctx, created.ID)
	if err != nil || got.ID != created.ID || got.Email != "jane@example.com" {
		t.Fatalf("get: %+v, %v", got, err)
	}

	updated, err := c.UpdateContact(ctx, created.ID, sinch.Contact{DisplayName: "Jane", Metadata: "not masked"},
		[]string{sinch.FieldDisplayName, sinch.FieldEmail})
	if err != nil {
		t.Fatal(err)
	}
	if updated.DisplayName != "Jane" || updated.Email != "" || updated.Metadata != "" || updated.ExternalID != "crm-1" {
		t.Errorf("updated %+v: want display name set, email cleared, the rest kept", updated)
	}
	last := e.Requests()[len(e.Requests())-1]
	if q, _ := url.ParseQuery(last.rawQuery); len(q["update_mask"]) != 1 || q.Get("update_mask") != "display_name,email" {
		t.Errorf("update query %q: want one comma-joined update_mask", last.rawQuery)
	}

	found, err := c.FindByExternalID(ctx, "crm-1")
	if err != nil || len(found) != 1 || found[0].ID != created.ID {
		t.Fatalf("find: %+v, %v", found, err)
	}
	if _, err := c.FindByExternalID(ctx, ""); err == nil {
		t.Error("an empty external id listed the whole project")
	}

	page, err := c.ListContacts(ctx, sinch.ListContactsRequest{PageSize: 50})
	if err != nil || len(page.Contacts) != 1 || page.NextPageToken != "" {
		t.Fatalf("list: %+v, %v", page, err)
	}
	if q := e.Requests()[len(e.Requests())-1].rawQuery; q != "page_size=20" {
		t.Errorf("list query %q, want the page size capped at 20", q)
	}
	page, err = c.ListContacts(ctx, sinch.ListContactsRequest{Channel: "SMS", Identity: "+46732000000"})
	if err != nil || len(page.Contacts) != 1 {
		t.Fatalf("list by identity: %+v, %v", page, err)
	}
	if q, _ := url.ParseQuery(e.Requests()[len(e.Requests())-1].rawQuery); q.Get("identity") != "46732000000" {
		t.Errorf("identity look-up sent %q, want the number as Sinch stores it, without '+'", q.Get("identity"))
	}

	other, err := c.CreateContact(ctx, sinch.Contact{
		ChannelIdentities: []sinch.ChannelIdentity{{Channel: "WHATSAPP", Identity: "+46700000009"}},
		Language:          "SV",
		Metadata:          "from other",
	})
	if err != nil {
		t.Fatal(err)
	}
	merged, err := c.MergeContacts(ctx, created.ID, other.ID)
	if err != nil {
		t.Fatal(err)
	}
	if merged.ID != created.ID || len(merged.ChannelIdentities) != 3 || merged.Metadata != "from other" {
		t.Errorf("merged %+v", merged)
	}
	if _, err := c.GetContact(ctx, other.ID); !sinch.IsNotFound(err) {
		t.Errorf("source after merge: %v, want not found", err)
	}

	if err := c.DeleteContact(ctx, created.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetContact(ctx, created.ID); !sinch.IsNotFound(err) {
		t.Errorf("get after delete: %v, want not found", err)
	}
	if err := c.DeleteContact(ctx, created.ID); !sinch.IsNotFound(err) {
		t.Errorf("a first delete of a missing contact: %v, want not found", err)
	}
	for _, r := range e.Requests() {
		if !strings.HasPrefix(r.authorization, "Basic ") {
			t.Errorf("%s %s sent %q, want Basic auth", r.method, r.path, r.authorization)
		}
	}
}

// TestViberBotChannel: VIBER (the Viber Bot channel) is app-scoped, unlike
// VIBERBM, and its id is kept as sent.
func TestViberBotChannel(t *testing.T) {
	if !sinch.IsValidChannel("VIBER") || !sinch.IsAppScopedChannel("VIBER") || sinch.IsPhoneChannel("VIBER") || sinch.IsAppScopedChannel("VIBERBM") {
		t.Fatal("VIBER must be a known app-scoped, non-phone channel")
	}
	e := newEnv(t, sinchtest.Options{})
	viber := sinch.ChannelIdentity{Channel: "VIBER", Identity: "+01234567890A=", AppID: "viber-app"}
	created, err := e.client.CreateContact(t.Context(), sinch.Contact{Language: "EN_US", ChannelIdentities: []sinch.ChannelIdentity{viber}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(created.ChannelIdentities, []sinch.ChannelIdentity{viber}) {
		t.Errorf("stored %+v, want %+v", created.ChannelIdentities, viber)
	}
	viber.AppID = ""
	if _, err := e.client.CreateContact(t.Context(), sinch.Contact{Language: "EN_US", ChannelIdentities: []sinch.ChannelIdentity{viber}}); apiError(t, err).HTTPStatus != 400 {
		t.Errorf("VIBER without app_id: %v, want a 400", err)
	}
}

func TestCreateRejectsUnspecifiedLanguage(t *testing.T) {
	e := newEnv(t, sinchtest.Options{})
	c := contact("x")
	c.Language = sinch.LanguageUnspecified
	if _, err := e.client.CreateContact(t.Context(), c); err == nil {
		t.Fatal("created a contact with language UNSPECIFIED")
	}
	if n := e.emu.Calls(sinchtest.OpCreate); n != 0 {
		t.Errorf("%d create calls, want none", n)
	}
}

func TestPagingCost(t *testing.T) {
	e := newEnv(t, sinchtest.Options{})
	seed := make([]sinch.Contact, 45)
	for i := range seed {
		seed[i] = contact(fmt.Sprintf("crm-%02d", i))
	}
	e.emu.Seed(seed...)
	want := e.emu.Contacts()

	var got []sinch.Contact
	for page, err := range e.client.Pages(t.Context(), sinch.ListContactsRequest{}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, page...)
	}
	if len(got) != 45 {
		t.Fatalf("%d contacts, want 45", len(got))
	}
	for i := range got {
		if got[i].ID != want[i].ID {
			t.Fatalf("contact %d: %s, want %s", i, got[i].ID, want[i].ID)
		}
	}
	if n := e.emu.Calls(sinchtest.OpList); n != 3 {
		t.Errorf("%d list calls, want 3", n)
	}

	e.emu.ResetCalls()
	for range e.client.Pages(t.Context(), sinch.ListContactsRequest{}) {
		break
	}
	if n := e.emu.Calls(sinchtest.OpList); n != 1 {
		t.Errorf("stopping after one page made %d list calls", n)
	}
}

// TestPagesThroughEmptyLastPage: a list that ends with a token and an
// empty page costs one more call and loses nothing.
func TestPagesThroughEmptyLastPage(t *testing.T) {
	e := newEnv(t, sinchtest.Options{EmptyLastPage: true})
	for i := range 40 {
		e.emu.Seed(contact(fmt.Sprintf("crm-%d", i%3)))
	}
	var got []sinch.Contact
	for page, err := range e.client.Pages(t.Context(), sinch.ListContactsRequest{}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, page...)
	}
	if len(got) != 40 || e.emu.Calls(sinchtest.OpList) != 3 {
		t.Errorf("%d contacts in %d calls, want 40 in 3 (two full pages and the empty one)", len(got), e.emu.Calls(sinchtest.OpList))
	}
	found, err := e.client.FindByExternalID(t.Context(), "crm-1")
	if err != nil || len(found) != 13 {
		t.Errorf("found %d, %v; want 13", len(found), err)
	}
}

func TestPagesStopsOnRepeatedToken(t *testing.T) {
	var calls atomic.Int32
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		fmt.Fprint(w, `{"contacts":[],"next_page_token":"same"}`)
	})
	c := newClient(t, sinch.Config{BaseURL: srv.URL, Auth: sinch.AuthBasic, ProjectID: "p", KeyID: "k", KeySecret: testSecret, RateLimitRPS: 1000})
	var err error
	for _, err = range c.Pages(t.Context(), sinch.ListContactsRequest{}) {
	}
	if err == nil || calls.Load() != 2 {
		t.Errorf("err %v after %d calls; want an error after 2", err, calls.Load())
	}
}

func TestAPIErrors(t *testing.T) {
	e := newEnv(t, sinchtest.Options{})
	ctx := t.Context()
	existing := e.emu.Seed(contact("x"))[0]
	tests := []struct {
		name       string
		op         string
		call       func() error
		wantHTTP   int
		wantStatus string
	}{
		{"get unknown", sinch.OpGet, func() error { _, err := e.client.GetContact(ctx, "01ARZ3NDEKTSV4RRFFQ69G5FAV"); return err }, 404, "NOT_FOUND"},
		{"create without identities", sinch.OpCreate, func() error {
			_, err := e.client.CreateContact(ctx, sinch.Contact{Language: "EN", ExternalID: "y"})
			return err
		}, 400, "INVALID_ARGUMENT"},
		{"update unknown mask path", sinch.OpUpdate, func() error {
			_, err := e.client.UpdateContact(ctx, existing.ID, sinch.Contact{}, []string{"nickname"})
			return err
		}, 400, "INVALID_ARGUMENT"},
		{"merge into itself", sinch.OpMerge, func() error { _, err := e.client.MergeContacts(ctx, existing.ID, existing.ID); return err }, 400, "INVALID_ARGUMENT"},
		{"merge unknown source", sinch.OpMerge, func() error { _, err := e.client.MergeContacts(ctx, existing.ID, "nope"); return err }, 404, "NOT_FOUND"},
		{"list with clashing filters", sinch.OpList, func() error {
			_, err := e.client.ListContacts(ctx, sinch.ListContactsRequest{ExternalID: "x", Channel: "SMS", Identity: "1"})
			return err
		}, 400, "INVALID_ARGUMENT"},
		{"delete unknown", sinch.OpDelete, func() error { return e.client.DeleteContact(ctx, "nope") }, 404, "NOT_FOUND"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.emu.ResetCalls()
			ae := apiError(t, tt.call())
			if ae.HTTPStatus != tt.wantHTTP || ae.Code != tt.wantHTTP || ae.Status != tt.wantStatus || ae.Message == "" || ae.Operation != tt.op {
				t.Errorf("error %+v, want %d %s from %s with a message", ae, tt.wantHTTP, tt.wantStatus, tt.op)
			}
			if ae.Details == nil {
				t.Error("details not decoded")
			}
			if got := sinch.IsNotFound(ae); got != (tt.wantHTTP == 404) {
				t.Errorf("IsNotFound = %v", got)
			}
			if n := e.emu.Calls(tt.op); n != 1 {
				t.Errorf("%d %s calls, want 1: a %d is not retried", n, tt.op, tt.wantHTTP)
			}
		})
	}
}

func TestNoRetryOnOther4xx(t *testing.T) {
	const secret = "Zx9-very-secret"
	for _, status := range []int{400, 401, 403, 404, 405, 409, 412, 422} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			var calls atomic.Int32
			srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				w.WriteHeader(status)
				fmt.Fprintf(w, `{"error":{"code":%d,"message":"no","status":"X","details":[]}}`, status)
			})
			cfg := sinch.Config{BaseURL: srv.URL, Auth: sinch.AuthBasic, ProjectID: "p", KeyID: "k", KeySecret: secret}
			fast(&cfg)
			c := newClient(t, cfg)
			ops := map[string]func() error{
				"get":    func() error { _, err := c.GetContact(t.Context(), "id"); return err },
				"create": func() error { _, err := c.CreateContact(t.Context(), contact("x")); return err },
				"update": func() error { _, err := c.UpdateContact(t.Context(), "id", sinch.Contact{}, nil); return err },
				"merge":  func() error { _, err := c.MergeContacts(t.Context(), "a", "b"); return err },
			}
			for name, call := range ops {
				calls.Store(0)
				err := call()
				if ae := apiError(t, err); ae.HTTPStatus != status {
					t.Errorf("%s: status %d, want %d", name, ae.HTTPStatus, status)
				}
				if n := calls.Load(); n != 1 {
					t.Errorf("%s: %d requests, want 1", name, n)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("%s: error %q carries the secret", name, err)
				}
			}
		})
	}
}

func TestAuthModes(t *testing.T) {
	tests := []struct {
		auth       string
		wantPrefix string
		wantTokens int
	}{
		{sinch.AuthBasic, "Basic ", 0},
		{sinch.AuthOAuth2, "Bearer ", 1},
	}
	for _, tt := range tests {
		t.Run(tt.auth, func(t *testing.T) {
			e := newEnv(t, sinchtest.Options{}, func(c *sinch.Config) { c.Auth = tt.auth })
			id := e.emu.Seed(contact("x"))[0].ID
			for range 3 {
				if _, err := e.client.GetContact(t.Context(), id); err != nil {
					t.Fatal(err)
				}
			}
			if n := e.emu.Calls(sinchtest.OpToken); n != tt.wantTokens {
				t.Errorf("%d token calls, want %d", n, tt.wantTokens)
			}
			for _, r := range e.Requests() {
				if r.path != "/oauth2/token" && !strings.HasPrefix(r.authorization, tt.wantPrefix) {
					t.Errorf("%s sent %q", r.path, r.authorization)
				}
			}
		})
	}
}

func TestOAuth2Refresh(t *testing.T) {
	emuClock := newFakeClock()
	e := newEnv(t, sinchtest.Options{TokenTTL: time.Hour, Clock: emuClock.Now}, func(c *sinch.Config) { c.Auth = sinch.AuthOAuth2 })
	id := e.emu.Seed(contact("x"))[0].ID
	get := func(t *testing.T) {
		t.Helper()
		if _, err := e.client.GetContact(t.Context(), id); err != nil {
			t.Fatal(err)
		}
	}
	counts := func(t *testing.T, wantToken, wantGet int) {
		t.Helper()
		if n := e.emu.Calls(sinchtest.OpToken); n != wantToken {
			t.Errorf("%d token calls, want %d", n, wantToken)
		}
		if n := e.emu.Calls(sinchtest.OpGet); n != wantGet {
			t.Errorf("%d get calls, want %d", n, wantGet)
		}
	}
	get(t)
	get(t)
	counts(t, 1, 2)

	// Near the end of its hour the client refreshes on its own: no 401.
	e.clock.Advance(59*time.Minute + 30*time.Second)
	emuClock.Advance(59*time.Minute + 30*time.Second)
	get(t)
	counts(t, 2, 3)

	// The server expires the token early (its clock runs ahead): one 401,
	// one new token, one resend.
	emuClock.Advance(2 * time.Hour)
	get(t)
	counts(t, 3, 5)
	get(t)
	counts(t, 3, 6)
}

// The token endpoint's 429s (Sinch's small bucket, without Retry-After)
// and 5xx are waited out like the contacts endpoints', and the contacts
// request is sent once a token comes: the token is a JWT, which the client
// treats as opaque, keeping it for the answer's expires_in.
func TestOAuth2ThroughTokenEndpointFaults(t *testing.T) {
	tests := []struct {
		name   string
		faults sinchtest.Faults
	}{
		{"429s", sinchtest.Faults{TooManyRequestsRate: 1}},
		{"5xx", sinchtest.Faults{ErrorRate: 1}},
		{"dropped", sinchtest.Faults{DropBeforeRate: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, sinchtest.Options{TokenFaults: tt.faults}, func(c *sinch.Config) { c.Auth = sinch.AuthOAuth2 })
			// The endpoint heals once the client has backed off twice.
			var sleeps atomic.Int32
			e.clock.OnSleep(func(time.Duration) {
				if sleeps.Add(1) == 2 {
					e.emu.SetTokenFaults(sinchtest.Faults{})
				}
			})
			id := e.emu.Seed(contact("x"))[0].ID
			if _, err := e.client.GetContact(t.Context(), id); err != nil {
				t.Fatal(err)
			}
			if _, err := e.client.GetContact(t.Context(), id); err != nil {
				t.Fatal(err)
			}
			if n, gets := e.emu.Calls(sinchtest.OpToken), e.emu.Calls(sinchtest.OpGet); n != 3 || gets != 2 {
				t.Errorf("%d token calls and %d gets, want 3 (two refused, one issued) and 2", n, gets)
			}
			for _, r := range e.Requests() {
				if r.path != "/oauth2/token" && strings.Count(strings.TrimPrefix(r.authorization, "Bearer "), ".") != 2 {
					t.Errorf("%s %s sent with %q, not the JWT", r.method, r.path, r.authorization)
				}
			}
		})
	}
}

func TestOAuth2SingleRefreshUnderLoad(t *testing.T) {
	e := newEnv(t, sinchtest.Options{}, func(c *sinch.Config) { c.Auth = sinch.AuthOAuth2 })
	id := e.emu.Seed(contact("x"))[0].ID
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := e.client.GetContact(t.Context(), id); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := e.emu.Calls(sinchtest.OpToken); n != 1 {
		t.Errorf("%d token calls for 20 concurrent calls, want 1", n)
	}
}

func TestOAuth2UnauthorizedTwiceGivesUp(t *testing.T) {
	emu := sinchtest.New(sinchtest.Options{})
	var contactCalls atomic.Int32
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/oauth2/token" {
			emu.ServeHTTP(w, r)
			return
		}
		contactCalls.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="expired"`)
		w.WriteHeader(401)
		fmt.Fprint(w, `{"error":{"code":401,"message":"expired","status":"UNAUTHENTICATED","details":[]}}`)
	})
	cfg := emu.ClientConfig(srv.URL)
	cfg.Auth = sinch.AuthOAuth2
	fast(&cfg)
	c := newClient(t, cfg)
	_, err := c.GetContact(t.Context(), "id")
	if ae := apiError(t, err); ae.HTTPStatus != 401 {
		t.Errorf("error %v, want 401", err)
	}
	if contactCalls.Load() != 2 || emu.Calls(sinchtest.OpToken) != 2 {
		t.Errorf("%d calls and %d tokens, want 2 and 2", contactCalls.Load(), emu.Calls(sinchtest.OpToken))
	}
}

// TestAccessErrors: a key of another project (403) and credentials that
// no fresh token cures (401) end the call at once with one line naming the
// configuration keys to check, never the secret.
func TestAccessErrors(t *testing.T) {
	tests := []struct {
		name       string
		tune       func(*sinch.Config)
		wantKeys   []string
		wantStatus int
		wantCalls  map[string]int
	}{
		{"another project, basic", func(c *sinch.Config) { c.ProjectID = "someone-else" },
			[]string{"sinch.project_id", "sinch.key_id", `"someone-else"`}, 403, map[string]int{sinchtest.OpGet: 1}},
		{"another project, oauth2", func(c *sinch.Config) { c.ProjectID = "someone-else"; c.Auth = sinch.AuthOAuth2 },
			[]string{"sinch.project_id", "sinch.key_id"}, 403, map[string]int{sinchtest.OpGet: 1, sinchtest.OpToken: 1}},
		{"wrong secret, basic", func(c *sinch.Config) { c.KeySecret = "wrong-secret-value" },
			[]string{"sinch.key_id", "sinch.key_secret", "sinch.auth", "basic"}, 401, map[string]int{sinchtest.OpGet: 1}},
		{"wrong secret, oauth2", func(c *sinch.Config) { c.KeySecret = "wrong-secret-value"; c.Auth = sinch.AuthOAuth2 },
			[]string{"sinch.key_id", "sinch.key_secret", "sinch.auth", "oauth2"}, 401, map[string]int{sinchtest.OpToken: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, sinchtest.Options{}, tt.tune)
			_, err := e.client.GetContact(t.Context(), "01ARZ3NDEKTSV4RRFFQ69G5FAV")
			if !sinch.IsAccessDenied(err) {
				t.Fatalf("error %v (%T), want an *AccessError", err, err)
			}
			if ae := apiError(t, err); ae.HTTPStatus != tt.wantStatus {
				t.Errorf("HTTP %d, want %d", ae.HTTPStatus, tt.wantStatus)
			}
			msg := err.Error()
			for _, k := range tt.wantKeys {
				if !strings.Contains(msg, k) {
					t.Errorf("error %q does not name %s", msg, k)
				}
			}
			if strings.ContainsAny(msg, "\n\r") || strings.Contains(msg, "wrong-secret-value") || strings.Contains(msg, sinchtest.DefaultKeySecret) {
				t.Errorf("error %q: not one clean line", msg)
			}
			got := e.emu.CallCounts()
			delete(got, sinchtest.OpOther)
			if !maps.Equal(got, tt.wantCalls) {
				t.Errorf("calls %v, want %v: never retried", got, tt.wantCalls)
			}
		})
	}
}

// TestAccessErrorKeepsOutcomeUnknown: a create whose answer was lost and
// whose look-up is then refused is both an access problem and a create of
// unknown outcome.
func TestAccessErrorKeepsOutcomeUnknown(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.WriteHeader(503)
			return
		}
		w.WriteHeader(403)
		fmt.Fprint(w, `{"error":{"code":403,"message":"no","status":"PERMISSION_DENIED","details":[]}}`)
	})
	cfg := sinch.Config{BaseURL: srv.URL, Auth: sinch.AuthBasic, ProjectID: "p", KeyID: "k", KeySecret: testSecret}
	fast(&cfg)
	c := newClient(t, cfg)
	sinch.SetClock(c, newFakeClock().Now, newFakeClock().Sleep)
	_, err := c.CreateContact(t.Context(), contact("crm-1"))
	if !errors.Is(err, sinch.ErrOutcomeUnknown) || !sinch.IsAccessDenied(err) || apiError(t, err).HTTPStatus != 403 {
		t.Errorf("error %v: want an outcome-unknown create and an access error", err)
	}
}

// TestOAuth2FreshTokenRefused: a bearer token refused twice (the second a
// fresh one) is a credentials error after exactly one re-fetch.
func TestOAuth2FreshTokenRefused(t *testing.T) {
	emu := sinchtest.New(sinchtest.Options{})
	var contactCalls atomic.Int32
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/oauth2/token" {
			emu.ServeHTTP(w, r)
			return
		}
		contactCalls.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(401)
		fmt.Fprint(w, `{"error":{"code":401,"message":"Unauthorized\nsecond line","status":"UNAUTHORIZED","details":[]}}`)
	})
	cfg := emu.ClientConfig(srv.URL)
	cfg.Auth = sinch.AuthOAuth2
	fast(&cfg)
	_, err := newClient(t, cfg).ListContacts(t.Context(), sinch.ListContactsRequest{})
	if !sinch.IsAccessDenied(err) || !strings.Contains(err.Error(), "sinch.key_secret") || strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q, want one line naming the credentials keys", err)
	}
	if contactCalls.Load() != 2 || emu.Calls(sinchtest.OpToken) != 2 {
		t.Errorf("%d calls and %d tokens, want 2 and 2", contactCalls.Load(), emu.Calls(sinchtest.OpToken))
	}
}

func TestOAuth2WrongKey(t *testing.T) {
	e := newEnv(t, sinchtest.Options{}, func(c *sinch.Config) { c.Auth = sinch.AuthOAuth2; c.KeySecret = "wrong-secret" })
	_, err := e.client.GetContact(t.Context(), "id")
	ae := apiError(t, err)
	if ae.HTTPStatus != 401 || ae.Operation != sinch.OpToken {
		t.Errorf("error %+v, want a 401 from the token endpoint", ae)
	}
	if e.emu.Calls(sinchtest.OpToken) != 1 || e.emu.Calls(sinchtest.OpGet) != 0 {
		t.Errorf("calls %v: a rejected key must not be retried", e.emu.CallCounts())
	}
	if strings.Contains(err.Error(), "wrong-secret") {
		t.Errorf("error %q carries the secret", err)
	}
}

func TestRateLimitedWithRetryAfter(t *testing.T) {
	e := newEnv(t, sinchtest.Options{Faults: sinchtest.Faults{TooManyRequestsRate: 1, RetryAfter: 3 * time.Second}})
	id := e.emu.Seed(contact("x"))[0].ID
	e.healAfterFirstSleep()
	if _, err := e.client.GetContact(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if slept := e.clock.Slept(); len(slept) == 0 || slept[0] < 3*time.Second {
		t.Errorf("slept %v, want at least the 3s Retry-After first", slept)
	}
	if n := e.emu.Calls(sinchtest.OpGet); n != 2 {
		t.Errorf("%d get calls, want 2", n)
	}
	if r := sinch.CurrentRate(e.client); r >= 10000 {
		t.Errorf("rate %v after a 429, want it lowered", r)
	}
}

// TestRateLimitedWithRetryInfo: the wait Sinch documents, a
// google.rpc.RetryInfo detail, is honoured like Retry-After.
func TestRateLimitedWithRetryInfo(t *testing.T) {
	e := newEnv(t, sinchtest.Options{Faults: sinchtest.Faults{TooManyRequestsRate: 1, RetryAfter: 2500 * time.Millisecond, RetryInfo: true}})
	id := e.emu.Seed(contact("x"))[0].ID
	e.healAfterFirstSleep()
	if _, err := e.client.GetContact(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if slept := e.clock.Slept(); len(slept) == 0 || slept[0] < 2500*time.Millisecond {
		t.Errorf("slept %v, want at least the 2.5s retry_delay first", slept)
	}
	if n := e.emu.Calls(sinchtest.OpGet); n != 2 {
		t.Errorf("%d get calls, want 2", n)
	}
}

// TestDecisionsKeyOnHTTPCode: whatever status string and code the body
// carries, the HTTP status alone decides whether a call is retried.
func TestDecisionsKeyOnHTTPCode(t *testing.T) {
	tests := []struct {
		name      string
		http      int
		body      string
		wantCalls int
	}{
		{"canonical 503", 503, `{"error":{"code":503,"message":"m","status":"UNAVAILABLE","details":[]}}`, 2},
		{"spec's INTERNAL_ERROR", 500, `{"error":{"code":500,"message":"m","status":"INTERNAL_ERROR","details":[]}}`, 2},
		{"501", 501, `{"error":{"code":501,"message":"m","status":"UNIMPLEMENTED","details":[]}}`, 2},
		{"429 whose body says 400", 429, `{"error":{"code":400,"message":"m","status":"INVALID_ARGUMENT","details":[]}}`, 2},
		{"spec's INVALID_REQUEST", 400, `{"code":400,"message":"m","status":"INVALID_REQUEST","details":[]}`, 1},
		{"400 whose body says UNAVAILABLE", 400, `{"error":{"code":503,"message":"m","status":"UNAVAILABLE","details":[]}}`, 1},
		{"404 whose body says RESOURCE_EXHAUSTED", 404, `{"error":{"code":429,"message":"m","status":"RESOURCE_EXHAUSTED","details":[]}}`, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := serve(t, func(w http.ResponseWriter, _ *http.Request) {
				if calls.Add(1) > 1 {
					fmt.Fprint(w, `{"id":"c1"}`)
					return
				}
				w.WriteHeader(tt.http)
				fmt.Fprint(w, tt.body)
			})
			cfg := sinch.Config{BaseURL: srv.URL, Auth: sinch.AuthBasic, ProjectID: "p", KeyID: "k", KeySecret: testSecret}
			fast(&cfg)
			c := newClient(t, cfg)
			sinch.SetClock(c, newFakeClock().Now, newFakeClock().Sleep)
			_, err := c.GetContact(t.Context(), "c1")
			if n := int(calls.Load()); n != tt.wantCalls {
				t.Errorf("%d calls, want %d (err %v)", n, tt.wantCalls, err)
			}
			if tt.wantCalls == 1 {
				if ae := apiError(t, err); ae.HTTPStatus != tt.http || sinch.IsNotFound(err) != (tt.http == 404) || sinch.IsRateLimited(err) {
					t.Errorf("error %+v", ae)
				}
			} else if err != nil {
				t.Errorf("retried call failed: %v", err)
			}
		})
	}
}

func TestRateLimitPausesWholeClient(t *testing.T) {
	e := newEnv(t, sinchtest.Options{Faults: sinchtest.Faults{TooManyRequestsRate: 1, RetryAfter: 10 * time.Second}},
		func(c *sinch.Config) { c.MaxRetryTime = time.Second })
	id := e.emu.Seed(contact("x"))[0].ID
	// A Retry-After beyond the retry budget: the call gives up at once...
	_, err := e.client.GetContact(t.Context(), id)
	if ae := apiError(t, err); !sinch.IsRateLimited(err) || ae.RetryAfter != 10*time.Second {
		t.Fatalf("error %+v, want a 429 carrying its Retry-After", ae)
	}
	if n := len(e.clock.Slept()); n != 0 {
		t.Fatalf("slept %d times before giving up", n)
	}
	// ...but the next, unrelated call still waits out the pause.
	e.emu.SetFaults(sinchtest.Faults{})
	if _, err := e.client.ListContacts(t.Context(), sinch.ListContactsRequest{}); err != nil {
		t.Fatal(err)
	}
	if slept := e.clock.Slept(); len(slept) != 1 || slept[0] < 9*time.Second {
		t.Errorf("slept %v, want one pause of about 10s", slept)
	}
}

func TestTransientFailuresRetried(t *testing.T) {
	tests := []struct {
		name   string
		faults sinchtest.Faults
		op     string
		call   func(c *sinch.Client, ctx context.Context, ids []string) error
	}{
		{"5xx on get", sinchtest.Faults{ErrorRate: 1}, sinchtest.OpGet, getCall},
		{"dropped get", sinchtest.Faults{DropBeforeRate: 1}, sinchtest.OpGet, getCall},
		{"5xx on update", sinchtest.Faults{ErrorRate: 1}, sinchtest.OpUpdate, updateCall},
		{"update dropped after the write", sinchtest.Faults{DropAfterRate: 1}, sinchtest.OpUpdate, updateCall},
		{"5xx on list", sinchtest.Faults{ErrorRate: 1}, sinchtest.OpList, listCall},
		{"429 on merge", sinchtest.Faults{TooManyRequestsRate: 1, RetryAfter: -1}, sinchtest.OpMerge, mergeCall},
		{"429 on create", sinchtest.Faults{TooManyRequestsRate: 1}, sinchtest.OpCreate, createCall},
		{"5xx on delete", sinchtest.Faults{ErrorRate: 1}, sinchtest.OpDelete, deleteCall},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, sinchtest.Options{})
			seeded := e.emu.Seed(contact("a"), contact("b"))
			e.emu.SetFaults(tt.faults)
			e.healAfterFirstSleep()
			if err := tt.call(e.client, t.Context(), []string{seeded[0].ID, seeded[1].ID}); err != nil {
				t.Fatal(err)
			}
			if n := e.emu.Calls(tt.op); n != 2 {
				t.Errorf("%d %s calls, want 2", n, tt.op)
			}
		})
	}
}

func getCall(c *sinch.Client, ctx context.Context, ids []string) error {
	_, err := c.GetContact(ctx, ids[0])
	return err
}

func updateCall(c *sinch.Client, ctx context.Context, ids []string) error {
	got, err := c.UpdateContact(ctx, ids[0], sinch.Contact{Email: "new@example.com"}, []string{sinch.FieldEmail})
	if err == nil && got.Email != "new@example.com" {
		return fmt.Errorf("email %q", got.Email)
	}
	return err
}

func listCall(c *sinch.Client, ctx context.Context, _ []string) error {
	_, err := c.ListContacts(ctx, sinch.ListContactsRequest{})
	return err
}

func mergeCall(c *sinch.Client, ctx context.Context, ids []string) error {
	_, err := c.MergeContacts(ctx, ids[0], ids[1])
	return err
}

func createCall(c *sinch.Client, ctx context.Context, _ []string) error {
	_, err := c.CreateContact(ctx, contact(""))
	return err
}

func deleteCall(c *sinch.Client, ctx context.Context, ids []string) error {
	return c.DeleteContact(ctx, ids[0])
}

func TestRetriesBounded(t *testing.T) {
	e := newEnv(t, sinchtest.Options{Faults: sinchtest.Faults{ErrorRate: 1}}, func(c *sinch.Config) { c.MaxAttempts = 3 })
	_, err := e.client.GetContact(t.Context(), "id")
	if ae := apiError(t, err); ae.HTTPStatus < 500 {
		t.Errorf("error %v, want the last 5xx", err)
	}
	if n := e.emu.Calls(sinchtest.OpGet); n != 3 {
		t.Errorf("%d calls, want MaxAttempts = 3", n)
	}

	e = newEnv(t, sinchtest.Options{Faults: sinchtest.Faults{ErrorRate: 1}}, func(c *sinch.Config) {
		c.MaxAttempts = 100
		c.MinBackoff, c.MaxBackoff = time.Second, time.Second
		c.MaxRetryTime = 10 * time.Second
	})
	if _, err := e.client.GetContact(t.Context(), "id"); err == nil {
		t.Fatal("no error")
	}
	var total time.Duration
	for _, d := range e.clock.Slept() {
		total += d
	}
	if total > 10*time.Second || e.emu.Calls(sinchtest.OpGet) < 2 {
		t.Errorf("slept %v over %d calls; want retries within the 10s budget", total, e.emu.Calls(sinchtest.OpGet))
	}
}

func TestCreateNeverDuplicated(t *testing.T) {
	tests := []struct {
		name        string
		faults      sinchtest.Faults
		externalID  string
		wantErr     error
		wantCreates int
		wantLists   int
		wantStored  int
	}{
		{"answer dropped after the write", sinchtest.Faults{DropAfterRate: 1}, "crm-1", nil, 1, 1, 1},
		{"dropped before the write", sinchtest.Faults{DropBeforeRate: 1}, "crm-1", nil, 2, 1, 1},
		{"5xx", sinchtest.Faults{ErrorRate: 1}, "crm-1", nil, 2, 1, 1},
		{"no external id, answer dropped", sinchtest.Faults{DropAfterRate: 1}, "", sinch.ErrOutcomeUnknown, 1, 0, 1},
		{"no external id, 5xx", sinchtest.Faults{ErrorRate: 1}, "", sinch.ErrOutcomeUnknown, 1, 0, 0},
		{"no external id, 429 is safe", sinchtest.Faults{TooManyRequestsRate: 1}, "", nil, 2, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, sinchtest.Options{Faults: tt.faults})
			e.healAfterFirstSleep()
			got, err := e.client.CreateContact(t.Context(), contact(tt.externalID))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			stored := e.emu.Contacts()
			if len(stored) != tt.wantStored {
				t.Fatalf("%d contacts stored, want %d", len(stored), tt.wantStored)
			}
			if err == nil && got.ID != stored[0].ID {
				t.Errorf("returned %s, stored %s", got.ID, stored[0].ID)
			}
			if n := e.emu.Calls(sinchtest.OpCreate); n != tt.wantCreates {
				t.Errorf("%d creates, want %d", n, tt.wantCreates)
			}
			if n := e.emu.Calls(sinchtest.OpList); n != tt.wantLists {
				t.Errorf("%d look-ups, want %d", n, tt.wantLists)
			}
		})
	}
}

func TestMergeAnswerLost(t *testing.T) {
	e := newEnv(t, sinchtest.Options{})
	seeded := e.emu.Seed(contact("dest"), sinch.Contact{
		ChannelIdentities: []sinch.ChannelIdentity{{Channel: "WHATSAPP", Identity: "46700000002"}},
		Email:             "src@example.com",
	})
	e.emu.SetFaults(sinchtest.Faults{DropAfterRate: 1})
	e.healAfterFirstSleep()
	merged, err := e.client.MergeContacts(t.Context(), seeded[0].ID, seeded[1].ID)
	if err != nil {
		t.Fatal(err)
	}
	if merged.ID != seeded[0].ID || merged.Email != "src@example.com" || len(merged.ChannelIdentities) != 2 {
		t.Errorf("merged %+v", merged)
	}
	if e.emu.Calls(sinchtest.OpMerge) != 2 || e.emu.Calls(sinchtest.OpGet) != 1 {
		t.Errorf("calls %v, want 2 merges and 1 get", e.emu.CallCounts())
	}
	if n := len(e.emu.Contacts()); n != 1 {
		t.Errorf("%d contacts left, want 1", n)
	}
}

func TestDeleteAnswerLost(t *testing.T) {
	e := newEnv(t, sinchtest.Options{})
	id := e.emu.Seed(contact("x"))[0].ID
	e.emu.SetFaults(sinchtest.Faults{DropAfterRate: 1})
	e.healAfterFirstSleep()
	if err := e.client.DeleteContact(t.Context(), id); err != nil {
		t.Fatalf("delete: %v; a 404 after a lost answer means done", err)
	}
	if n := e.emu.Calls(sinchtest.OpDelete); n != 2 {
		t.Errorf("%d deletes, want 2", n)
	}
}

func TestTimeouts(t *testing.T) {
	tests := []struct {
		name   string
		faults sinchtest.Faults
	}{
		{"hung server", sinchtest.Faults{Latency: time.Minute}},
		{"slow loris", sinchtest.Faults{SlowLoris: time.Minute}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, sinchtest.Options{Faults: tt.faults}, func(c *sinch.Config) {
				c.Timeout = 50 * time.Millisecond
				c.MaxAttempts = 2
			})
			e.emu.Seed(contact("x"))
			start := time.Now()
			_, err := e.client.ListContacts(t.Context(), sinch.ListContactsRequest{})
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("error %v, want a deadline", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
			if n := e.emu.Calls(sinchtest.OpList); n != 2 {
				t.Errorf("%d calls, want 2: a timeout is retried", n)
			}
		})
	}
}

func TestContextCancelled(t *testing.T) {
	e := newEnv(t, sinchtest.Options{Faults: sinchtest.Faults{ErrorRate: 1}})
	ctx, cancel := context.WithCancel(t.Context())
	e.clock.OnSleep(func(time.Duration) { cancel() })
	_, err := e.client.GetContact(ctx, "id")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want cancelled", err)
	}
	if n := e.emu.Calls(sinchtest.OpGet); n != 1 {
		t.Errorf("%d calls after cancelling during the backoff", n)
	}
	if _, err := e.client.GetContact(ctx, "id"); !errors.Is(err, context.Canceled) {
		t.Errorf("error %v from a cancelled context", err)
	}
}

func TestSecretNeverInErrors(t *testing.T) {
	const secret = "Zx9-top-secret-Q"
	basic := base64.StdEncoding.EncodeToString([]byte("key:" + secret))
	echo := serve(t, func(w http.ResponseWriter, r *http.Request) {
		// A hostile or buggy server echoing credentials into its errors.
		if r.URL.Path == "/oauth2/token" {
			w.WriteHeader(400)
			fmt.Fprintf(w, `{"error":"invalid_client","error_description":"bad %s %s"}`, secret, r.Header.Get("Authorization"))
			return
		}
		w.WriteHeader(403)
		fmt.Fprintf(w, `{"error":{"code":403,"message":"denied %s / %s","status":"PERMISSION_DENIED"}}`, secret, r.Header.Get("Authorization"))
	})
	closed := serve(t, func(http.ResponseWriter, *http.Request) {})
	closed.Close()

	config := func(base, auth string) sinch.Config {
		cfg := sinch.Config{BaseURL: base, TokenURL: base + "/oauth2/token", ProjectID: "p", KeyID: "key", KeySecret: secret, Auth: auth, MaxAttempts: 2}
		fast(&cfg)
		return cfg
	}
	var errs []error
	for _, cfg := range []sinch.Config{config(echo.URL, "basic"), config(echo.URL, "oauth2"), config(closed.URL, "basic"), config(closed.URL, "oauth2")} {
		c := newClient(t, cfg)
		_, err := c.GetContact(t.Context(), "id")
		errs = append(errs, err)
		_, err = c.CreateContact(t.Context(), contact("x"))
		errs = append(errs, err)
	}
	bad := config(echo.URL, "basic")
	bad.Region = "nowhere"
	_, err := sinch.NewClient(bad)
	errs = append(errs, err)

	for _, err := range errs {
		if err == nil {
			t.Fatal("a failing call returned no error")
		}
		for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			if strings.Contains(s, secret) || strings.Contains(s, basic) {
				t.Errorf("error carries credentials: %s", s)
			}
		}
	}
}

// TestSecretScrubbedBeforeTheCut: a long error body that echoes the secret
// across the point where the message is cut keeps no piece of it, from the
// contacts endpoints and from the token endpoint alike.
func TestSecretScrubbedBeforeTheCut(t *testing.T) {
	filler := strings.Repeat("x", 240) // the cut is at 256 bytes: inside the secret
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprintf(w, "<html>%s%s and %s</html>", filler, testSecret, r.Header.Get("Authorization"))
	})
	for _, auth := range []string{sinch.AuthBasic, sinch.AuthOAuth2} {
		t.Run(auth, func(t *testing.T) {
			cfg := sinch.Config{BaseURL: srv.URL, TokenURL: srv.URL + "/oauth2/token", Auth: auth, ProjectID: "p", KeyID: "k", KeySecret: testSecret, MaxAttempts: 1}
			fast(&cfg)
			_, err := newClient(t, cfg).GetContact(t.Context(), "id")
			ae := apiError(t, err)
			if !strings.Contains(ae.Message, filler[:100]) {
				t.Fatalf("message %q: not the body's start", ae.Message)
			}
			for _, piece := range []string{testSecret[:6], testSecret[6:12], testSecret[len(testSecret)-6:]} {
				if strings.Contains(err.Error(), piece) {
					t.Errorf("error %q keeps %q of the secret", err, piece)
				}
			}
		})
	}
}

func TestConcurrencyBound(t *testing.T) {
	emu := sinchtest.New(sinchtest.Options{Faults: sinchtest.Faults{Latency: 5 * time.Millisecond}})
	id := emu.Seed(contact("x"))[0].ID
	var inFlight, peak atomic.Int32
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		emu.ServeHTTP(w, r)
	})
	cfg := emu.ClientConfig(srv.URL)
	fast(&cfg)
	cfg.MaxConcurrency = 3
	c := newClient(t, cfg)
	var wg sync.WaitGroup
	for range 24 {
		wg.Go(func() {
			if _, err := c.GetContact(t.Context(), id); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if p := peak.Load(); p > 3 || p < 2 {
		t.Errorf("peak of %d requests in flight, want up to 3", p)
	}
}

// TestInFlightSizedFromRoundTrip: at 400 requests/s and a server taking at
// least 50ms, the client lets at least 400×0.05+1 requests be in flight, and
// never more than MaxConcurrency. Only lower bounds on time: a loaded
// machine makes round trips longer, never shorter.
func TestInFlightSizedFromRoundTrip(t *testing.T) {
	e := newEnv(t, sinchtest.Options{Faults: sinchtest.Faults{Latency: 50 * time.Millisecond}}, func(c *sinch.Config) {
		c.RateLimitRPS = 400
		c.MaxConcurrency = 30
	})
	if n, _ := e.client.InFlightLimit(); n != 2 {
		t.Errorf("limit %d before any answer, want 2", n)
	}
	if _, err := e.client.ListContacts(t.Context(), sinch.ListContactsRequest{}); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.client.InFlightLimit(); n < 21 || n > 30 {
		t.Errorf("limit %d after a round trip of at least 50ms at 400/s, want 21 to 30", n)
	}
}

func TestClientRateLimit(t *testing.T) {
	e := newEnv(t, sinchtest.Options{}, func(c *sinch.Config) { c.RateLimitRPS = 40 })
	start := time.Now()
	for range 20 {
		if _, err := e.client.ListContacts(t.Context(), sinch.ListContactsRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	// 20 calls at 40/s with a burst of 4: at least 16/40 s.
	if d := time.Since(start); d < 380*time.Millisecond {
		t.Errorf("20 calls took %v, faster than 40 per second", d)
	}
}

func TestObserver(t *testing.T) {
	obs := &countingObserver{}
	e := newEnv(t, sinchtest.Options{Faults: sinchtest.Faults{DropBeforeRate: 1}}, func(c *sinch.Config) {
		c.Observer = obs
		c.Auth = sinch.AuthOAuth2
	})
	e.healAfterFirstSleep()
	if _, err := e.client.ListContacts(t.Context(), sinch.ListContactsRequest{}); err != nil {
		t.Fatal(err)
	}
	want := []observed{{sinch.OpToken, 200}, {sinch.OpList, 0}, {sinch.OpList, 200}}
	if got := obs.Calls(); !slices.Equal(got, want) {
		t.Errorf("observed %v, want %v", got, want)
	}
}
