package sinch_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/sinch/sinchtest"
)

const fixtureDir = "testdata/fixtures"

// TestFixtures decodes every reference payload of the official SDK's
// contract tests. A fixture without a check here fails the test, so the set
// stays covered as files are added.
func TestFixtures(t *testing.T) {
	checks := map[string]func(t *testing.T, raw []byte){
		"auth/BearerAuthResponse.json":                                  checkBearerFixture,
		"contacts/ContactDto.json":                                      checkContactFixture("my created contact ID", "33987654321", "AR"),
		"contacts/ContactCreateRequestDto.json":                         checkContactFixture("", "+33987654321", "AR"),
		"contacts/ContactUpdateRequestDto.json":                         checkContactFixture("", "a channel identity", sinch.LanguageUnspecified),
		"contacts/ContactListResponseDtoPage0.json":                     checkListFixture(1, "the next page token value"),
		"contacts/ContactListResponseDtoPage1.json":                     checkListFixture(0, ""),
		"contacts/ContactMergeRequestDto.json":                          checkMergeFixture,
		"errors-numbers/not-found-error.json":                           checkErrorFixture(404, "NOT_FOUND", "message string"),
		"errors-numbers/error-trial-account.json":                       checkErrorFixture(403, "PERMISSION_DENIED", "Trial account is not enabled to rent number"),
		"sinchevents-contact/ContactCreateEventDto.json":                checkEventFixture("contact_create_notification", "contact"),
		"sinchevents-contact/ContactUpdateEventDto.json":                checkEventFixture("contact_update_notification", "contact"),
		"sinchevents-contact/ContactDeleteEventDto.json":                checkEventFixture("contact_delete_notification", "contact"),
		"sinchevents-contact/ContactMergeEventDto.json":                 checkEventFixture("contact_merge_notification", "deleted_contact", "preserved_contact"),
		"sinchevents-contact/ContactIdentitiesDuplicationEventDto.json": checkEventFixture("duplicated_contact_identities_notification"),
		// Endpoints syncd does not call: checked for shape only.
		"contacts/IdentityConflictsDto.json":                        checkShape(map[string]string{"identity": "string", "channels": "array", "contact_ids": "array"}),
		"contacts/ListIdentityConflictsResponseDtoPage0.json":       checkShape(map[string]string{"conflicts": "array", "next_page_token": "string"}),
		"contacts/ListIdentityConflictsResponseDtoPage1.json":       checkShape(map[string]string{"conflicts": "array", "next_page_token": "string"}),
		"contacts/ContactGetChannelProfileByChannelRequestDto.json": checkShape(map[string]string{"app_id": "string", "recipient": "object", "channel": "string"}),
		"contacts/ContactGetChannelProfileByContactRequestDto.json": checkShape(map[string]string{"app_id": "string", "recipient": "object", "channel": "string"}),
		"contacts/ContactGetChannelResponseDto.json":                checkShape(map[string]string{"profile_name": "string"}),
		"projectsettings/ContactSettingsDto.json":                   checkShape(map[string]string{"unified_contact_id_enabled": "bool"}),
	}
	seen := map[string]bool{}
	err := filepath.WalkDir(fixtureDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".json") {
			return err
		}
		name := filepath.ToSlash(strings.TrimPrefix(path, fixtureDir+string(filepath.Separator)))
		seen[name] = true
		check, ok := checks[name]
		if !ok {
			t.Errorf("fixture %s has no check", name)
			return nil
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		t.Run(name, func(t *testing.T) { check(t, raw) })
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name := range checks {
		if !seen[name] {
			t.Errorf("fixture %s is missing", name)
		}
	}
}

// decodeStrict fails on any field the target type does not know.
func decodeStrict(t *testing.T, raw []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decoding into %T: %v", v, err)
	}
}

// sameJSON reports whether two documents hold the same values.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(x, y)
}

func checkContactFixture(id, firstIdentity, language string) func(*testing.T, []byte) {
	return func(t *testing.T, raw []byte) {
		var c sinch.Contact
		decodeStrict(t, raw, &c)
		if c.ID != id || len(c.ChannelIdentities) == 0 || c.ChannelIdentities[0].Identity != firstIdentity || c.Language != language {
			t.Errorf("decoded %+v", c)
		}
		if c.DisplayName == "" || c.Email == "" || c.ExternalID == "" || c.Metadata == "" || len(c.ChannelPriority) == 0 {
			t.Errorf("decoded %+v: a field was lost", c)
		}
		// Every field is set, so encoding gives the fixture back.
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if !sameJSON(t, raw, out) {
			t.Errorf("re-encoded as %s", out)
		}
	}
}

func checkListFixture(n int, token string) func(*testing.T, []byte) {
	return func(t *testing.T, raw []byte) {
		var page sinch.ListContactsResponse
		decodeStrict(t, raw, &page)
		if len(page.Contacts) != n || page.NextPageToken != token {
			t.Errorf("decoded %+v", page)
		}
		for _, c := range page.Contacts {
			if c.ID == "" || len(c.ChannelIdentities) != 1 || c.ChannelIdentities[0].AppID != "an app id" {
				t.Errorf("contact %+v", c)
			}
		}
	}
}

func checkMergeFixture(t *testing.T, raw []byte) {
	var m sinch.MergeRequest
	decodeStrict(t, raw, &m)
	if m.SourceID != "foo 2" || m.Strategy != "MERGE" {
		t.Errorf("decoded %+v", m)
	}
	out, err := json.Marshal(sinch.MergeRequest{SourceID: "foo 2", Strategy: "MERGE"})
	if err != nil {
		t.Fatal(err)
	}
	if !sameJSON(t, raw, out) {
		t.Errorf("the client sends %s, the SDK %s", out, raw)
	}
}

// checkErrorFixture decodes the body directly and as a client sees it.
func checkErrorFixture(status int, name, message string) func(*testing.T, []byte) {
	return func(t *testing.T, raw []byte) {
		check := func(t *testing.T, ae *sinch.APIError) {
			t.Helper()
			// The detail is a ResourceInfo, not a RetryInfo: no wait.
			if ae.HTTPStatus != status || ae.Code != status || ae.Status != name || ae.Message != message || len(ae.Details) != 1 || ae.RetryAfter != 0 {
				t.Errorf("decoded %+v", ae)
			}
			var detail map[string]string
			if err := json.Unmarshal(ae.Details[0], &detail); err != nil || detail["type"] == "" {
				t.Errorf("detail %s: %v", ae.Details[0], err)
			}
		}
		check(t, sinch.DecodeError(sinch.OpGet, status, http.Header{}, raw, time.Now()))

		srv := serve(t, func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(status)
			w.Write(raw)
		})
		cfg := sinch.Config{BaseURL: srv.URL, Auth: sinch.AuthBasic, ProjectID: "p", KeyID: "k", KeySecret: testSecret}
		fast(&cfg)
		_, err := newClient(t, cfg).GetContact(t.Context(), "id")
		check(t, apiError(t, err))
		if got := sinch.IsNotFound(err); got != (status == 404) {
			t.Errorf("IsNotFound = %v", got)
		}
		// A 403 (here billing's) is named as an access problem, in one line.
		if got := sinch.IsAccessDenied(err); got != (status == 403) || strings.Contains(err.Error(), "\n") {
			t.Errorf("IsAccessDenied = %v for %q", got, err)
		}
	}
}

// checkBearerFixture serves the SDK's token answer to the client and checks
// that the token reaches the contacts call.
func checkBearerFixture(t *testing.T, raw []byte) {
	var sent []string
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/oauth2/token" {
			w.Header().Set("Content-Type", "application/json")
			w.Write(raw)
			return
		}
		sent = append(sent, r.Header.Get("Authorization"))
		fmt.Fprint(w, `{"contacts":[],"next_page_token":""}`)
	})
	cfg := sinch.Config{BaseURL: srv.URL, TokenURL: srv.URL + "/oauth2/token", ProjectID: "p", KeyID: "k", KeySecret: testSecret, Auth: sinch.AuthOAuth2}
	fast(&cfg)
	c := newClient(t, cfg)
	for range 2 {
		if _, err := c.ListContacts(t.Context(), sinch.ListContactsRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(sent, []string{"Bearer token value", "Bearer token value"}) {
		t.Errorf("sent %q, want the fixture's token, fetched once", sent)
	}
}

// checkEventFixture decodes a contact webhook event, holding its contacts to
// the client's Contact type.
func checkEventFixture(notification string, contactKeys ...string) func(*testing.T, []byte) {
	return func(t *testing.T, raw []byte) {
		var event map[string]json.RawMessage
		decodeStrict(t, raw, &event)
		for _, k := range []string{"app_id", "accepted_time", "event_time", "project_id", "message_metadata", "correlation_id"} {
			if _, ok := event[k]; !ok {
				t.Errorf("event lacks %s", k)
			}
		}
		var body map[string]json.RawMessage
		decodeStrict(t, event[notification], &body)
		if len(body) == 0 {
			t.Fatalf("no %s", notification)
		}
		for _, k := range contactKeys {
			var c sinch.Contact
			decodeStrict(t, body[k], &c)
			if c.ID == "" || len(c.ChannelIdentities) == 0 || c.Language == "" {
				t.Errorf("%s: %+v", k, c)
			}
		}
	}
}

// checkShape checks the top-level keys of a payload and their JSON kinds.
func checkShape(want map[string]string) func(*testing.T, []byte) {
	return func(t *testing.T, raw []byte) {
		var m map[string]any
		decodeStrict(t, raw, &m)
		for k, kind := range want {
			var got string
			switch m[k].(type) {
			case string:
				got = "string"
			case []any:
				got = "array"
			case map[string]any:
				got = "object"
			case bool:
				got = "bool"
			}
			if got != kind {
				t.Errorf("%s is %T, want %s", k, m[k], kind)
			}
		}
		if len(m) != len(want) {
			t.Errorf("keys %v, want %v", m, want)
		}
	}
}

// TestFixturePagesThroughClient pages through the SDK's two list fixtures.
func TestFixturePagesThroughClient(t *testing.T) {
	page0, err := os.ReadFile(filepath.Join(fixtureDir, "contacts/ContactListResponseDtoPage0.json"))
	if err != nil {
		t.Fatal(err)
	}
	page1, err := os.ReadFile(filepath.Join(fixtureDir, "contacts/ContactListResponseDtoPage1.json"))
	if err != nil {
		t.Fatal(err)
	}
	var tokens []string
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		tok := r.URL.Query().Get("page_token")
		tokens = append(tokens, tok)
		if tok == "" {
			w.Write(page0)
		} else {
			w.Write(page1)
		}
	})
	cfg := sinch.Config{BaseURL: srv.URL, Auth: sinch.AuthBasic, ProjectID: "p", KeyID: "k", KeySecret: testSecret}
	fast(&cfg)
	var got []sinch.Contact
	for page, err := range newClient(t, cfg).Pages(t.Context(), sinch.ListContactsRequest{}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, page...)
	}
	if len(got) != 1 || !slices.Equal(tokens, []string{"", "the next page token value"}) {
		t.Errorf("%d contacts over tokens %q", len(got), tokens)
	}
}

// TestFixtureIdentityLookUp creates the SDK's create request in the
// emulator, checks it is stored as the SDK's answer fixture shows (the MMS
// number without '+', the MESSENGER id as sent), and finds it by its number
// given with '+', as syncd holds numbers.
func TestFixtureIdentityLookUp(t *testing.T) {
	read := func(name string) sinch.Contact {
		t.Helper()
		raw, err := os.ReadFile(filepath.Join(fixtureDir, "contacts", name))
		if err != nil {
			t.Fatal(err)
		}
		var c sinch.Contact
		decodeStrict(t, raw, &c)
		return c
	}
	request, answer := read("ContactCreateRequestDto.json"), read("ContactDto.json")
	e := newEnv(t, sinchtest.Options{})
	created, err := e.client.CreateContact(t.Context(), request)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(created.ChannelIdentities, answer.ChannelIdentities) {
		t.Errorf("stored identities %+v, the SDK's answer has %+v", created.ChannelIdentities, answer.ChannelIdentities)
	}
	number := request.ChannelIdentities[0]
	found, err := e.client.ListContacts(t.Context(), sinch.ListContactsRequest{Channel: number.Channel, Identity: number.Identity})
	if err != nil {
		t.Fatal(err)
	}
	if len(found.Contacts) != 1 || found.Contacts[0].ID != created.ID {
		t.Errorf("look-up of %s %s found %+v, want the created contact", number.Channel, number.Identity, found.Contacts)
	}
}

// TestFixtureEmptyLastPage: the emulator's trailing empty page is the SDK
// fixture's ContactListResponseDtoPage1.json, and the client reads through
// it.
func TestFixtureEmptyLastPage(t *testing.T) {
	want, err := os.ReadFile(filepath.Join(fixtureDir, "contacts/ContactListResponseDtoPage1.json"))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, sinchtest.Options{EmptyLastPage: true})
	e.emu.Seed(contact("crm-1"))
	first, err := e.client.ListContacts(t.Context(), sinch.ListContactsRequest{})
	if err != nil || len(first.Contacts) != 1 || first.NextPageToken == "" {
		t.Fatalf("first page %+v, %v: want the contact and a token", first, err)
	}
	req, err := http.NewRequest("GET", e.srv.URL+"/v1/projects/"+sinchtest.DefaultProjectID+"/contacts?page_token="+first.NextPageToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(sinchtest.DefaultKeyID, sinchtest.DefaultKeySecret)
	req.Close = true // no idle connection left for goleak
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got bytes.Buffer
	if _, err := got.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	if !sameJSON(t, want, got.Bytes()) {
		t.Errorf("the emulator's last page is %s, the SDK fixture %s", got.Bytes(), want)
	}
}
