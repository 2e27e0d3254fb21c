package sinchtest_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/sinch/sinchtest"
)

func TestRoutes(t *testing.T) {
	e, srv := sinchtest.Start(t, sinchtest.Options{})
	c := e.Seed(validContact("a"))[0]
	tests := []struct {
		name, method, path string
		wantStatus         int
		wantRPC            string
		wantOp             string
	}{
		{"list", "GET", projectPath + "/contacts", 200, "", sinchtest.OpList},
		{"get", "GET", projectPath + "/contacts/" + c.ID, 200, "", sinchtest.OpGet},
		// A valid key used on a project it does not belong to.
		{"another project", "GET", "/v1/projects/someone-else/contacts/" + c.ID, 403, "PERMISSION_DENIED", sinchtest.OpGet},
		{"another project list", "GET", "/v1/projects/someone-else/contacts", 403, "PERMISSION_DENIED", sinchtest.OpList},
		{"unknown path", "GET", projectPath + "/apps", 404, "NOT_FOUND", sinchtest.OpOther},
		{"outside v1", "GET", "/contacts", 404, "NOT_FOUND", sinchtest.OpOther},
		{"wrong method", "PUT", projectPath + "/contacts/" + c.ID, 405, "UNIMPLEMENTED", sinchtest.OpOther},
		{"get on merge", "GET", projectPath + "/contacts/" + c.ID + ":merge", 405, "UNIMPLEMENTED", sinchtest.OpOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.ResetCalls()
			a := send(t, srv, tt.method, tt.path, "")
			if a.status != tt.wantStatus {
				t.Fatalf("status %d, want %d (%s)", a.status, tt.wantStatus, a.body)
			}
			if tt.wantRPC != "" {
				code, status, _ := a.rpc(t)
				if code != tt.wantStatus || status != tt.wantRPC {
					t.Errorf("error %d %s, want %d %s", code, status, tt.wantStatus, tt.wantRPC)
				}
			}
			if got := e.Calls(tt.wantOp); got != 1 {
				t.Errorf("Calls(%q) = %d, want 1 (counts %v)", tt.wantOp, got, e.CallCounts())
			}
		})
	}
}

func TestBasicAuth(t *testing.T) {
	_, srv := sinchtest.Start(t, sinchtest.Options{KeyID: "id", KeySecret: "s3cret"})
	tests := []struct {
		name string
		opt  func(*http.Request)
		want int
	}{
		{"right key", withBasic("id", "s3cret"), 200},
		{"wrong secret", withBasic("id", "nope"), 401},
		{"wrong id", withBasic("other", "s3cret"), 401},
		{"no credentials", withoutAuth, 401},
		{"unknown bearer", withHeader("Authorization", "Bearer made-up"), 401},
		{"other scheme", withHeader("Authorization", "Digest x"), 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := send(t, srv, "GET", projectPath+"/contacts", "", tt.opt)
			if a.status != tt.want {
				t.Fatalf("status %d, want %d", a.status, tt.want)
			}
			if tt.want == 401 {
				if _, status, _ := a.rpc(t); status != "UNAUTHENTICATED" {
					t.Errorf("status %q, want UNAUTHENTICATED", status)
				}
				if a.header.Get("WWW-Authenticate") == "" {
					t.Error("no WWW-Authenticate header")
				}
				if strings.Contains(string(a.body), "s3cret") {
					t.Error("the error body carries the secret")
				}
			}
		})
	}
}

func tokenForm(grant string) string { return url.Values{"grant_type": {grant}}.Encode() }

func formBody(r *http.Request) {
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
}

func TestTokenEndpoint(t *testing.T) {
	e, srv := sinchtest.Start(t, sinchtest.Options{TokenTTL: 90 * time.Minute})
	tests := []struct {
		name, method, body string
		opts               []func(*http.Request)
		want               int
		wantError          string
	}{
		{"basic client auth", "POST", tokenForm("client_credentials"), []func(*http.Request){formBody}, 200, ""},
		{"form client auth", "POST", tokenForm("client_credentials") + "&client_id=" + sinchtest.DefaultKeyID + "&client_secret=" + sinchtest.DefaultKeySecret,
			[]func(*http.Request){formBody, withoutAuth}, 200, ""},
		{"wrong secret", "POST", tokenForm("client_credentials"), []func(*http.Request){formBody, withBasic(sinchtest.DefaultKeyID, "x")}, 401, "invalid_client"},
		{"wrong grant", "POST", tokenForm("password"), []func(*http.Request){formBody}, 400, "unsupported_grant_type"},
		{"GET", "GET", "", nil, 405, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.ResetCalls()
			a := send(t, srv, tt.method, "/oauth2/token", tt.body, tt.opts...)
			if a.status != tt.want {
				t.Fatalf("status %d, want %d (%s)", a.status, tt.want, a.body)
			}
			if got := e.Calls(sinchtest.OpToken); got != 1 {
				t.Errorf("token calls %d, want 1", got)
			}
			var m map[string]any
			if err := json.Unmarshal(a.body, &m); err != nil {
				t.Fatal(err)
			}
			if tt.wantError != "" {
				if m["error"] != tt.wantError {
					t.Errorf("error %v, want %s", m["error"], tt.wantError)
				}
				return
			}
			for _, k := range []string{"access_token", "expires_in", "scope", "token_type"} {
				if _, ok := m[k]; !ok {
					t.Errorf("answer %s lacks %q", a.body, k)
				}
			}
			if m["expires_in"] != float64(5400) {
				t.Errorf("expires_in %v, want 5400", m["expires_in"])
			}
			bearer := withHeader("Authorization", "Bearer "+m["access_token"].(string))
			if got := send(t, srv, "GET", projectPath+"/contacts", "", bearer); got.status != 200 {
				t.Errorf("the token does not authorize a list: %d", got.status)
			}
		})
	}
}

func fetchToken(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	a := send(t, srv, "POST", "/oauth2/token", tokenForm("client_credentials"), formBody)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(a.body, &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("token answer %d %s: %v", a.status, a.body, err)
	}
	return tok.AccessToken
}

func TestBearerTokenExpires(t *testing.T) {
	clk := newFakeClock()
	_, srv := sinchtest.Start(t, sinchtest.Options{TokenTTL: time.Minute, Clock: clk.Now})
	tok := fetchToken(t, srv)
	bearer := withHeader("Authorization", "Bearer "+tok)

	if a := send(t, srv, "GET", projectPath+"/contacts", "", bearer); a.status != 200 {
		t.Fatalf("fresh token: status %d", a.status)
	}
	clk.Advance(time.Minute)
	a := send(t, srv, "GET", projectPath+"/contacts", "", bearer)
	if a.status != 401 {
		t.Fatalf("expired token: status %d, want 401", a.status)
	}
	// The form of the Node SDK's own test of its refresh, which looks for
	// "expired" in the header.
	if h := a.header.Get("WWW-Authenticate"); h != `Bearer realm="sinch", error="invalid_token", error_description="expired"` {
		t.Errorf("WWW-Authenticate %q", h)
	}
	if _, status, _ := a.rpc(t); status != "UNAUTHENTICATED" {
		t.Errorf("status %q", status)
	}
}

func TestCreate(t *testing.T) {
	long := strings.Repeat("é", sinch.MaxMetadataLength)
	base := validContact("ext")
	with := func(f func(*sinch.Contact)) string {
		c := base
		c.ChannelIdentities = slices.Clone(base.ChannelIdentities)
		f(&c)
		return mustJSON(t, c)
	}
	tests := []struct {
		name, body string
		want       int
	}{
		{"valid", with(func(*sinch.Contact) {}), 200},
		{"metadata of 1024 characters", with(func(c *sinch.Contact) { c.Metadata = long }), 200},
		{"app-scoped with app_id", with(func(c *sinch.Contact) {
			c.ChannelIdentities = []sinch.ChannelIdentity{{Channel: "MESSENGER", Identity: "796", AppID: "app"}}
		}), 200},
		{"no identities", with(func(c *sinch.Contact) { c.ChannelIdentities = nil }), 400},
		{"empty identities", `{"channel_identities":[],"language":"EN_US"}`, 400},
		{"unknown channel", with(func(c *sinch.Contact) { c.ChannelIdentities[0].Channel = "PIGEON" }), 400},
		{"empty identity", with(func(c *sinch.Contact) { c.ChannelIdentities[0].Identity = "" }), 400},
		{"app-scoped without app_id", with(func(c *sinch.Contact) {
			c.ChannelIdentities = []sinch.ChannelIdentity{{Channel: "INSTAGRAM", Identity: "796"}}
		}), 400},
		{"VIBER bot with app_id", with(func(c *sinch.Contact) {
			c.ChannelIdentities = []sinch.ChannelIdentity{{Channel: "VIBER", Identity: "01234567890A=", AppID: "app"}}
		}), 200},
		{"VIBER bot without app_id", with(func(c *sinch.Contact) {
			c.ChannelIdentities = []sinch.ChannelIdentity{{Channel: "VIBER", Identity: "01234567890A="}}
		}), 400},
		{"no language", with(func(c *sinch.Contact) { c.Language = "" }), 400},
		{"language UNSPECIFIED", with(func(c *sinch.Contact) { c.Language = sinch.LanguageUnspecified }), 400},
		{"unknown language", with(func(c *sinch.Contact) { c.Language = "KLINGON" }), 400},
		{"unknown priority channel", with(func(c *sinch.Contact) { c.ChannelPriority = []string{"FAX"} }), 400},
		{"metadata of 1025 characters", with(func(c *sinch.Contact) { c.Metadata = long + "x" }), 400},
		{"unknown field", `{"channel_identities":[{"channel":"SMS","identity":"1"}],"language":"EN","nickname":"x"}`, 400},
		{"malformed JSON", `{"channel_identities":`, 400},
	}
	e, srv := sinchtest.Start(t, sinchtest.Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.Contacts())
			a := send(t, srv, "POST", projectPath+"/contacts", tt.body)
			if a.status != tt.want {
				t.Fatalf("status %d, want %d (%s)", a.status, tt.want, a.body)
			}
			stored := len(e.Contacts()) - before
			if tt.want != 200 {
				if _, status, msg := a.rpc(t); status != "INVALID_ARGUMENT" || msg == "" {
					t.Errorf("error %q %q, want INVALID_ARGUMENT with a message", status, msg)
				}
				if stored != 0 {
					t.Errorf("a rejected create stored %d contacts", stored)
				}
				return
			}
			if stored != 1 {
				t.Errorf("stored %d contacts, want 1", stored)
			}
			if _, err := ulid.ParseStrict(a.contact(t).ID); err != nil {
				t.Errorf("id is not a ULID: %v", err)
			}
		})
	}
}

func TestCreateNormalisesAndAnswersEmptyValues(t *testing.T) {
	_, srv := sinchtest.Start(t, sinchtest.Options{})
	a := send(t, srv, "POST", projectPath+"/contacts", mustJSON(t, sinch.Contact{
		ChannelIdentities: []sinch.ChannelIdentity{
			{Channel: "SMS", Identity: "+33987654321"},
			{Channel: "MESSENGER", Identity: "+33987654321", AppID: "app"},
		},
		Language: "FR",
	}))
	if a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(a.body, &raw); err != nil {
		t.Fatal(err)
	}
	for field, want := range map[string]string{
		"email": `""`, "external_id": `""`, "metadata": `""`, "channel_priority": `[]`, "display_name": `"Unknown"`, "language": `"FR"`,
	} {
		if got := string(raw[field]); got != want {
			t.Errorf("%s = %s, want %s", field, got, want)
		}
	}
	c := a.contact(t)
	want := []sinch.ChannelIdentity{{Channel: "SMS", Identity: "33987654321"}, {Channel: "MESSENGER", Identity: "+33987654321", AppID: "app"}}
	if !slices.Equal(c.ChannelIdentities, want) {
		t.Errorf("identities %+v, want %+v", c.ChannelIdentities, want)
	}
	if !strings.Contains(string(raw["channel_identities"]), `"app_id":""`) {
		t.Errorf("identities %s do not carry an empty app_id", raw["channel_identities"])
	}
}

func TestList(t *testing.T) {
	e, srv := sinchtest.Start(t, sinchtest.Options{})
	var seeded []sinch.Contact
	for i := range 25 {
		c := validContact(fmt.Sprintf("ext-%d", i%5))
		c.ChannelIdentities = []sinch.ChannelIdentity{sms(fmt.Sprintf("+4670000%04d", i))}
		seeded = append(seeded, c)
	}
	e.Seed(seeded...)
	all := e.Contacts()

	list := func(t *testing.T, q url.Values) answer {
		t.Helper()
		return send(t, srv, "GET", projectPath+"/contacts?"+q.Encode(), "")
	}
	t.Run("page sizes", func(t *testing.T) {
		for _, tt := range []struct {
			size string
			want int
		}{{"", 10}, {"0", 10}, {"7", 7}, {"20", 20}, {"50", 20}} {
			q := url.Values{}
			if tt.size != "" {
				q.Set("page_size", tt.size)
			}
			if got := len(list(t, q).list(t).Contacts); got != tt.want {
				t.Errorf("page_size %q: %d contacts, want %d", tt.size, got, tt.want)
			}
		}
	})
	t.Run("walk all pages in id order", func(t *testing.T) {
		var got []sinch.Contact
		q := url.Values{"page_size": {"7"}}
		pages := 0
		for {
			page := list(t, q).list(t)
			got = append(got, page.Contacts...)
			pages++
			if page.NextPageToken == "" {
				break
			}
			if strings.Contains(page.NextPageToken, all[len(got)-1].ID) {
				t.Errorf("page token %q shows the id in clear", page.NextPageToken)
			}
			q.Set("page_token", page.NextPageToken)
		}
		if pages != 4 || len(got) != len(all) {
			t.Fatalf("%d pages, %d contacts; want 4 pages, %d contacts", pages, len(got), len(all))
		}
		for i := range got {
			if got[i].ID != all[i].ID {
				t.Fatalf("contact %d is %s, want %s", i, got[i].ID, all[i].ID)
			}
		}
		if !slices.IsSortedFunc(got, func(a, b sinch.Contact) int { return strings.Compare(a.ID, b.ID) }) {
			t.Error("not ordered by id")
		}
	})
	t.Run("exact last page has no token", func(t *testing.T) {
		page := list(t, url.Values{"page_size": {"20"}, "page_token": {list(t, url.Values{"page_size": {"5"}}).list(t).NextPageToken}}).list(t)
		if len(page.Contacts) != 20 || page.NextPageToken != "" {
			t.Errorf("%d contacts, token %q; want 20 and none", len(page.Contacts), page.NextPageToken)
		}
	})
	t.Run("filters", func(t *testing.T) {
		tests := []struct {
			name string
			q    url.Values
			want int
		}{
			{"external_id", url.Values{"external_id": {"ext-3"}}, 5},
			{"unknown external_id", url.Values{"external_id": {"nobody"}}, 0},
			// Matched as stored: a client sending the '+' (%2B) misses.
			{"phone with plus", url.Values{"channel": {"SMS"}, "identity": {"+46700000007"}}, 0},
			{"phone without plus", url.Values{"channel": {"SMS"}, "identity": {"46700000007"}}, 1},
			{"other channel", url.Values{"channel": {"WHATSAPP"}, "identity": {"46700000007"}}, 0},
		}
		for _, tt := range tests {
			a := list(t, tt.q)
			if a.status != 200 {
				t.Fatalf("%s: status %d (%s)", tt.name, a.status, a.body)
			}
			if got := len(a.list(t).Contacts); got != tt.want {
				t.Errorf("%s: %d contacts, want %d", tt.name, got, tt.want)
			}
		}
	})
	t.Run("bad requests", func(t *testing.T) {
		token := list(t, url.Values{"page_size": {"2"}, "external_id": {"ext-1"}}).list(t).NextPageToken
		tests := []struct {
			name string
			q    url.Values
		}{
			{"external_id with channel", url.Values{"external_id": {"x"}, "channel": {"SMS"}, "identity": {"1"}}},
			{"external_id with identity", url.Values{"external_id": {"x"}, "identity": {"1"}}},
			{"channel alone", url.Values{"channel": {"SMS"}}},
			{"identity alone", url.Values{"identity": {"1"}}},
			{"unknown channel", url.Values{"channel": {"FAX"}, "identity": {"1"}}},
			{"page_size not a number", url.Values{"page_size": {"ten"}}},
			{"negative page_size", url.Values{"page_size": {"-1"}}},
			{"forged page_token", url.Values{"page_token": {"not-a-token"}}},
			{"page_token of another filter", url.Values{"page_token": {token}}},
		}
		for _, tt := range tests {
			a := list(t, tt.q)
			if a.status != 400 {
				t.Errorf("%s: status %d, want 400", tt.name, a.status)
				continue
			}
			if _, status, _ := a.rpc(t); status != "INVALID_ARGUMENT" {
				t.Errorf("%s: status %q", tt.name, status)
			}
		}
	})
}

func TestGetAndDelete(t *testing.T) {
	e, srv := sinchtest.Start(t, sinchtest.Options{})
	c := e.Seed(validContact("x"))[0]
	path := projectPath + "/contacts/" + c.ID
	if a := send(t, srv, "GET", path, ""); a.status != 200 || a.contact(t).ExternalID != "x" {
		t.Fatalf("get: %d %s", a.status, a.body)
	}
	if a := send(t, srv, "GET", projectPath+"/contacts/01ARZ3NDEKTSV4RRFFQ69G5FAV", ""); a.status != 404 {
		t.Fatalf("get unknown: status %d", a.status)
	}
	a := send(t, srv, "DELETE", path, "")
	if a.status != 200 || strings.TrimSpace(string(a.body)) != "{}" {
		t.Fatalf("delete: %d %q, want 200 {}", a.status, a.body)
	}
	for _, method := range []string{"GET", "DELETE"} {
		a := send(t, srv, method, path, "")
		if a.status != 404 {
			t.Errorf("%s after delete: status %d, want 404", method, a.status)
		} else if _, status, _ := a.rpc(t); status != "NOT_FOUND" {
			t.Errorf("%s after delete: %s", method, status)
		}
	}
	if n := len(e.Contacts()); n != 0 {
		t.Errorf("%d contacts left", n)
	}
}

// RefuseReads makes the GET of the ids it refuses answer 400, known or
// not, and leaves the others alone.
func TestRefuseReads(t *testing.T) {
	e, srv := sinchtest.Start(t, sinchtest.Options{})
	good, bad := e.Seed(validContact("good"), validContact("bad"))[0], "not-a-ulid"
	e.RefuseReads(func(id string) error {
		if id == bad {
			return errors.New("contact_id: not a valid id")
		}
		return nil
	})
	a := send(t, srv, "GET", projectPath+"/contacts/"+bad, "")
	if code, status, msg := a.rpc(t); a.status != 400 || code != 400 || status != "INVALID_ARGUMENT" || msg != "contact_id: not a valid id" {
		t.Errorf("refused get: %d %s", a.status, a.body)
	}
	if a := send(t, srv, "GET", projectPath+"/contacts/"+good.ID, ""); a.status != 200 {
		t.Errorf("get: %d %s", a.status, a.body)
	}
	e.RefuseReads(nil)
	if a := send(t, srv, "GET", projectPath+"/contacts/"+bad, ""); a.status != 404 {
		t.Errorf("get once allowed: %d %s", a.status, a.body)
	}
}

func TestUpdate(t *testing.T) {
	original := sinch.Contact{
		ChannelIdentities: []sinch.ChannelIdentity{sms("46732000000")},
		ChannelPriority:   []string{"SMS"},
		DisplayName:       "Jane",
		Email:             "jane@example.com",
		ExternalID:        "crm-1",
		Language:          "EN_US",
		Metadata:          "m",
	}
	newBody := sinch.Contact{
		ChannelIdentities: []sinch.ChannelIdentity{{Channel: "WHATSAPP", Identity: "+46700000001"}},
		DisplayName:       "Joan",
		Email:             "joan@example.com",
		Language:          "SV",
	}
	tests := []struct {
		name   string
		query  string
		body   sinch.Contact
		want   int
		change func(*sinch.Contact) // applied to original when want is 200
	}{
		{"comma-joined mask changes only masked fields", "update_mask=display_name,email", newBody, 200,
			func(c *sinch.Contact) { c.DisplayName, c.Email = "Joan", "joan@example.com" }},
		{"repeated mask parameters", "update_mask=display_name&update_mask=language", newBody, 200,
			func(c *sinch.Contact) { c.DisplayName, c.Language = "Joan", "SV" }},
		{"masked field absent from the body is cleared", "update_mask=email,metadata,external_id", sinch.Contact{}, 200,
			func(c *sinch.Contact) { c.Email, c.Metadata, c.ExternalID = "", "", "" }},
		{"cleared display_name becomes Unknown", "update_mask=display_name", sinch.Contact{}, 200,
			func(c *sinch.Contact) { c.DisplayName = "Unknown" }},
		{"cleared language becomes UNSPECIFIED", "update_mask=language", sinch.Contact{}, 200,
			func(c *sinch.Contact) { c.Language = sinch.LanguageUnspecified }},
		{"identities replaced and normalised", "update_mask=channel_identities", newBody, 200,
			func(c *sinch.Contact) {
				c.ChannelIdentities = []sinch.ChannelIdentity{{Channel: "WHATSAPP", Identity: "46700000001"}}
			}},
		{"no mask sets what the body carries", "", sinch.Contact{Email: "new@example.com"}, 200,
			func(c *sinch.Contact) { c.Email = "new@example.com" }},
		{"unknown path", "update_mask=display_name,nickname", newBody, 400, nil},
		{"id is not maskable", "update_mask=id", newBody, 400, nil},
		{"clearing identities fails validation", "update_mask=channel_identities", sinch.Contact{}, 400, nil},
		{"invalid language", "update_mask=language", sinch.Contact{Language: "XX"}, 400, nil},
		{"metadata too long", "update_mask=metadata", sinch.Contact{Metadata: strings.Repeat("x", 1025)}, 400, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, srv := sinchtest.Start(t, sinchtest.Options{})
			c := e.Seed(original)[0]
			a := send(t, srv, "PATCH", projectPath+"/contacts/"+c.ID+"?"+tt.query, mustJSON(t, tt.body))
			if a.status != tt.want {
				t.Fatalf("status %d, want %d (%s)", a.status, tt.want, a.body)
			}
			want := c
			if tt.change != nil {
				tt.change(&want)
			}
			stored := e.Contacts()[0]
			if !equalContacts(stored, want) {
				t.Errorf("stored %+v\nwant     %+v", stored, want)
			}
			if tt.want == 200 && !equalContacts(a.contact(t), want) {
				t.Errorf("answered %+v\nwant       %+v", a.contact(t), want)
			}
		})
	}
	t.Run("unknown id", func(t *testing.T) {
		_, srv := sinchtest.Start(t, sinchtest.Options{})
		if a := send(t, srv, "PATCH", projectPath+"/contacts/nope?update_mask=email", `{}`); a.status != 404 {
			t.Errorf("status %d, want 404", a.status)
		}
	})
}

// equalContacts compares contacts treating nil and empty slices alike, as
// Sinch does.
func equalContacts(a, b sinch.Contact) bool {
	return slices.Equal(a.ChannelIdentities, b.ChannelIdentities) && slices.Equal(a.ChannelPriority, b.ChannelPriority) &&
		a.ID == b.ID && a.DisplayName == b.DisplayName && a.Email == b.Email && a.ExternalID == b.ExternalID &&
		a.Language == b.Language && a.Metadata == b.Metadata
}

func TestMerge(t *testing.T) {
	e, srv := sinchtest.Start(t, sinchtest.Options{})
	seeded := e.Seed(
		sinch.Contact{
			ChannelIdentities: []sinch.ChannelIdentity{sms("46700000001")},
			ChannelPriority:   []string{"SMS"},
			DisplayName:       "Dest",
			Language:          sinch.LanguageUnspecified,
		},
		sinch.Contact{
			ChannelIdentities: []sinch.ChannelIdentity{
				sms("46700000002"),
				{Channel: "WHATSAPP", Identity: "46700000002"},
				{Channel: "MESSENGER", Identity: "m-2", AppID: "app"},
			},
			DisplayName: "Source",
			Email:       "src@example.com",
			ExternalID:  "crm-2",
			Language:    "DE",
			Metadata:    "from source",
		},
		validContact("other"),
	)
	dest, src, other := seeded[0], seeded[1], seeded[2]
	merge := func(destID, body string) answer {
		return send(t, srv, "POST", projectPath+"/contacts/"+destID+":merge", body)
	}
	bad := []struct {
		name, dest, body string
		want             int
	}{
		{"into itself", dest.ID, `{"source_id":"` + dest.ID + `","strategy":"MERGE"}`, 400},
		{"no source_id", dest.ID, `{"strategy":"MERGE"}`, 400},
		{"unknown strategy", dest.ID, `{"source_id":"` + src.ID + `","strategy":"SQUASH"}`, 400},
		{"unknown destination", "01ARZ3NDEKTSV4RRFFQ69G5FAV", `{"source_id":"` + src.ID + `"}`, 404},
		{"unknown source", dest.ID, `{"source_id":"01ARZ3NDEKTSV4RRFFQ69G5FAV"}`, 404},
	}
	for _, tt := range bad {
		if a := merge(tt.dest, tt.body); a.status != tt.want {
			t.Errorf("%s: status %d, want %d (%s)", tt.name, a.status, tt.want, a.body)
		}
	}
	if n := len(e.Contacts()); n != 3 {
		t.Fatalf("failed merges changed the store: %d contacts", n)
	}

	a := merge(dest.ID, `{"source_id":"`+src.ID+`","strategy":"MERGE"}`)
	if a.status != 200 {
		t.Fatalf("merge: %d %s", a.status, a.body)
	}
	want := sinch.Contact{
		ID: dest.ID,
		// The destination keeps its SMS; the source's SMS stays behind, its
		// other channels move and go to the bottom of the priority.
		ChannelIdentities: []sinch.ChannelIdentity{
			sms("46700000001"),
			{Channel: "WHATSAPP", Identity: "46700000002"},
			{Channel: "MESSENGER", Identity: "m-2", AppID: "app"},
		},
		ChannelPriority: []string{"SMS", "WHATSAPP", "MESSENGER"},
		DisplayName:     "Dest", // set: kept
		Email:           "src@example.com",
		ExternalID:      "crm-2",
		Language:        "DE", // UNSPECIFIED counts as empty
		Metadata:        "from source",
	}
	if got := a.contact(t); !equalContacts(got, want) {
		t.Errorf("merged %+v\nwant   %+v", got, want)
	}
	if got := send(t, srv, "GET", projectPath+"/contacts/"+src.ID, ""); got.status != 404 {
		t.Errorf("source after merge: status %d, want 404", got.status)
	}
	ids := []string{}
	for _, c := range e.Contacts() {
		ids = append(ids, c.ID)
	}
	if !slices.Equal(ids, []string{dest.ID, other.ID}) {
		t.Errorf("ids after merge %v", ids)
	}
	if a := merge(dest.ID, `{"source_id":"`+src.ID+`","strategy":"MERGE"}`); a.status != 404 {
		t.Errorf("merging the gone source again: status %d, want 404", a.status)
	}
}

func TestSeedAndSnapshots(t *testing.T) {
	e := sinchtest.New(sinchtest.Options{})
	got := e.Seed(
		sinch.Contact{ID: "01B", ChannelIdentities: []sinch.ChannelIdentity{sms("+1")}},
		sinch.Contact{ChannelIdentities: []sinch.ChannelIdentity{sms("2")}, DisplayName: "Two", Language: "EN"},
	)
	if got[0].ID != "01B" || got[0].ChannelIdentities[0].Identity != "1" || got[0].DisplayName != "Unknown" || got[0].Language != sinch.LanguageUnspecified {
		t.Errorf("seeded %+v: not normalised like a create", got[0])
	}
	if _, err := ulid.ParseStrict(got[1].ID); err != nil {
		t.Errorf("assigned id %q: %v", got[1].ID, err)
	}
	snap := e.Contacts()
	if len(snap) != 2 || snap[0].ID > snap[1].ID {
		t.Fatalf("snapshot %+v not ordered by id", snap)
	}
	snap[0].ChannelIdentities[0].Identity = "changed"
	if e.Contacts()[0].ChannelIdentities[0].Identity == "changed" {
		t.Error("the snapshot shares memory with the store")
	}
}

func TestCallCounts(t *testing.T) {
	e, srv := sinchtest.Start(t, sinchtest.Options{})
	c := e.Seed(validContact("x"))[0]
	path := projectPath + "/contacts/"
	send(t, srv, "GET", path[:len(path)-1], "")
	send(t, srv, "GET", path+c.ID, "")
	send(t, srv, "GET", path+"missing", "")                                  // 404 counts
	send(t, srv, "POST", path[:len(path)-1], `{}`)                           // 400 counts
	send(t, srv, "PATCH", path+c.ID+"?update_mask=email", `{}`, withoutAuth) // 401 counts
	send(t, srv, "DELETE", path+"missing", "")
	send(t, srv, "POST", path+c.ID+":merge", `{"source_id":"missing"}`)
	send(t, srv, "POST", "/oauth2/token", tokenForm("client_credentials"), formBody)
	want := map[string]int{"list": 1, "get": 2, "create": 1, "update": 1, "delete": 1, "merge": 1, "token": 1}
	got := e.CallCounts()
	for op, n := range want {
		if got[op] != n {
			t.Errorf("Calls(%s) = %d, want %d", op, got[op], n)
		}
	}
	got["list"] = 99
	if e.Calls(sinchtest.OpList) != 1 {
		t.Error("CallCounts shares its map with the emulator")
	}
	e.ResetCalls()
	if n := len(e.CallCounts()); n != 0 {
		t.Errorf("%d counters after ResetCalls", n)
	}
}

func TestFaults(t *testing.T) {
	tests := []struct {
		name           string
		faults         sinchtest.Faults
		wantStatus     int // 0: the connection drops
		wantRetryAfter string
		wantStored     int
	}{
		{"5xx", sinchtest.Faults{ErrorRate: 1}, 500, "", 0},
		{"429 default Retry-After", sinchtest.Faults{TooManyRequestsRate: 1}, 429, "1", 0},
		{"429 Retry-After rounded up", sinchtest.Faults{TooManyRequestsRate: 1, RetryAfter: 2500 * time.Millisecond}, 429, "3", 0},
		{"429 without Retry-After", sinchtest.Faults{TooManyRequestsRate: 1, RetryAfter: -1}, 429, "", 0},
		{"drop before the write", sinchtest.Faults{DropBeforeRate: 1}, 0, "", 0},
		{"drop after the write", sinchtest.Faults{DropAfterRate: 1}, 0, "", 1},
		{"no faults", sinchtest.Faults{}, 200, "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, srv := sinchtest.Start(t, sinchtest.Options{Faults: tt.faults})
			a, err := trySend(t, srv, "POST", projectPath+"/contacts", mustJSON(t, validContact("x")))
			switch {
			case tt.wantStatus == 0 && err == nil:
				t.Fatalf("answered %d, want a dropped connection", a.status)
			case tt.wantStatus != 0 && err != nil:
				t.Fatal(err)
			case tt.wantStatus == 500 && a.status != 500 && a.status != 503:
				t.Fatalf("status %d, want 500 or 503", a.status)
			case tt.wantStatus != 0 && tt.wantStatus != 500 && a.status != tt.wantStatus:
				t.Fatalf("status %d, want %d", a.status, tt.wantStatus)
			}
			if got := a.header.Get("Retry-After"); err == nil && got != tt.wantRetryAfter {
				t.Errorf("Retry-After %q, want %q", got, tt.wantRetryAfter)
			}
			if tt.wantStatus >= 400 {
				if _, status, _ := a.rpc(t); status == "" {
					t.Error("no status in the error body")
				}
			}
			if n := len(e.Contacts()); n != tt.wantStored {
				t.Errorf("%d contacts stored, want %d", n, tt.wantStored)
			}
			if n := e.Calls(sinchtest.OpCreate); n != 1 {
				t.Errorf("create calls %d, want 1", n)
			}
		})
	}
}

func TestServerRateLimit(t *testing.T) {
	_, srv := sinchtest.Start(t, sinchtest.Options{Faults: sinchtest.Faults{RateLimitRPS: 2}})
	var statuses []int
	for range 3 {
		statuses = append(statuses, send(t, srv, "GET", projectPath+"/contacts", "").status)
	}
	if !slices.Equal(statuses, []int{200, 200, 429}) {
		t.Fatalf("statuses %v, want a burst of 2 then 429", statuses)
	}
	a := send(t, srv, "GET", projectPath+"/contacts", "")
	if a.status != 429 || a.header.Get("Retry-After") != "1" {
		t.Errorf("status %d Retry-After %q, want 429 with 1", a.status, a.header.Get("Retry-After"))
	}
	if _, status, _ := a.rpc(t); status != "RESOURCE_EXHAUSTED" {
		t.Errorf("status %q", status)
	}
}

func TestFaultsAreDeterministic(t *testing.T) {
	run := func(seed int64) []int {
		_, srv := sinchtest.Start(t, sinchtest.Options{Faults: sinchtest.Faults{ErrorRate: 0.5, TooManyRequestsRate: 0.2, Seed: seed}})
		var out []int
		for range 30 {
			out = append(out, send(t, srv, "GET", projectPath+"/contacts", "").status)
		}
		return out
	}
	a, b := run(7), run(7)
	if !slices.Equal(a, b) {
		t.Errorf("same seed, different faults:\n%v\n%v", a, b)
	}
	if !slices.Contains(a, 200) || !slices.Contains(a, 429) || (!slices.Contains(a, 500) && !slices.Contains(a, 503)) {
		t.Errorf("statuses %v lack a mix of faults", a)
	}
	if c := run(8); slices.Equal(a, c) {
		t.Errorf("seeds 7 and 8 gave the same sequence %v", a)
	}
}

// TestLatencyAndSlowLoris checks lower bounds only, which a loaded machine
// can only make truer: every pause is a timer, and timers never fire early.
func TestLatencyAndSlowLoris(t *testing.T) {
	tests := []struct {
		name    string
		faults  sinchtest.Faults
		atLeast time.Duration
	}{
		{"latency", sinchtest.Faults{Latency: 30 * time.Millisecond, LatencyJitter: 10 * time.Millisecond}, 30 * time.Millisecond},
		{"slow loris", sinchtest.Faults{SlowLoris: 30 * time.Millisecond}, 30 * time.Millisecond},
		{"slow loris and latency add up", sinchtest.Faults{Latency: 20 * time.Millisecond, SlowLoris: 30 * time.Millisecond}, 50 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, srv := sinchtest.Start(t, sinchtest.Options{Faults: tt.faults})
			e.Seed(validContact("x"))
			start := time.Now()
			a := send(t, srv, "GET", projectPath+"/contacts", "")
			if elapsed := time.Since(start); elapsed < tt.atLeast {
				t.Errorf("answered in %v, want at least %v", elapsed, tt.atLeast)
			}
			if a.status != 200 || len(a.list(t).Contacts) != 1 {
				t.Errorf("answer %d %s", a.status, a.body)
			}
		})
	}
}

func TestSetFaultsAnyTime(t *testing.T) {
	e, srv := sinchtest.Start(t, sinchtest.Options{Faults: sinchtest.Faults{ErrorRate: 1}})
	if a := send(t, srv, "GET", projectPath+"/contacts", ""); a.status < 500 {
		t.Fatalf("status %d, want 5xx", a.status)
	}
	e.SetFaults(sinchtest.Faults{})
	if a := send(t, srv, "GET", projectPath+"/contacts", ""); a.status != 200 {
		t.Fatalf("status %d after clearing faults", a.status)
	}
}

func TestConcurrentUse(t *testing.T) {
	e, srv := sinchtest.Start(t, sinchtest.Options{})
	var wg sync.WaitGroup
	for i := range 20 {
		body := mustJSON(t, validContact(fmt.Sprintf("c-%d", i)))
		wg.Go(func() {
			// trySend: t.Fatal must not run outside the test goroutine.
			if a, err := trySend(t, srv, "POST", projectPath+"/contacts", body); err != nil || a.status != 200 {
				t.Errorf("create: %d %v", a.status, err)
			}
			if _, err := trySend(t, srv, "GET", projectPath+"/contacts?page_size=20", ""); err != nil {
				t.Error(err)
			}
			e.Contacts()
			e.CallCounts()
		})
	}
	wg.Wait()
	if n := len(e.Contacts()); n != 20 {
		t.Errorf("%d contacts, want 20", n)
	}
	if n := e.Calls(sinchtest.OpCreate) + e.Calls(sinchtest.OpList); n != 40 {
		t.Errorf("%d calls, want 40", n)
	}
}

// TestUnifiedContactID: with unified_contact_id_enabled, every write that
// leaves a phone number on a contact gets the SMS, MMS and RCS identities of
// that number added by the service, once; app-scoped ids are left alone.
func TestUnifiedContactID(t *testing.T) {
	e, srv := sinchtest.Start(t, sinchtest.Options{UnifiedContactID: true})
	created := send(t, srv, "POST", projectPath+"/contacts", mustJSON(t, sinch.Contact{
		Language: "EN_US",
		ChannelIdentities: []sinch.ChannelIdentity{
			{Channel: "WHATSAPP", Identity: "+46700000001"},
			{Channel: "MESSENGER", Identity: "+46700000009", AppID: "app"},
		},
	})).contact(t)
	want := []sinch.ChannelIdentity{
		{Channel: "WHATSAPP", Identity: "46700000001"},
		{Channel: "MESSENGER", Identity: "+46700000009", AppID: "app"},
		{Channel: "SMS", Identity: "46700000001"},
		{Channel: "MMS", Identity: "46700000001"},
		{Channel: "RCS", Identity: "46700000001"},
	}
	if !slices.Equal(created.ChannelIdentities, want) {
		t.Errorf("created with %+v, want %+v", created.ChannelIdentities, want)
	}
	// A patch that brings a new number gets its identities added; one that
	// drops identities of a number the contact keeps does not get them
	// back; a name change leaves the identities as they are.
	patched := send(t, srv, "PATCH", projectPath+"/contacts/"+created.ID+"?update_mask=channel_identities",
		mustJSON(t, sinch.Contact{ChannelIdentities: []sinch.ChannelIdentity{sms("+46700000002"), {Channel: "MMS", Identity: "46700000001"}}})).contact(t)
	want = []sinch.ChannelIdentity{sms("46700000002"), {Channel: "MMS", Identity: "46700000001"}, {Channel: "MMS", Identity: "46700000002"}, {Channel: "RCS", Identity: "46700000002"}}
	if !slices.Equal(patched.ChannelIdentities, want) {
		t.Errorf("patched to %+v, want %+v", patched.ChannelIdentities, want)
	}
	renamed := send(t, srv, "PATCH", projectPath+"/contacts/"+created.ID+"?update_mask=display_name", `{"display_name":"Ada"}`).contact(t)
	if !slices.Equal(renamed.ChannelIdentities, want) {
		t.Errorf("renamed: identities %+v, want %+v", renamed.ChannelIdentities, want)
	}
	// The added identities are found like any other.
	found := send(t, srv, "GET", projectPath+"/contacts?channel=MMS&identity=46700000002", "").list(t)
	if len(found.Contacts) != 1 || found.Contacts[0].ID != created.ID {
		t.Errorf("look-up on MMS found %+v", found.Contacts)
	}
	// Without the setting nothing is added.
	e.SetUnifiedContactID(false)
	plain := send(t, srv, "POST", projectPath+"/contacts", mustJSON(t, validContact("plain"))).contact(t)
	if len(plain.ChannelIdentities) != 1 {
		t.Errorf("without the setting: %+v", plain.ChannelIdentities)
	}
}

// TestEmptyLastPage: the list can end as the SDK fixture shows, with a
// token whose page is empty.
func TestEmptyLastPage(t *testing.T) {
	e, srv := sinchtest.Start(t, sinchtest.Options{EmptyLastPage: true})
	for i := range 5 {
		e.Seed(validContact(fmt.Sprintf("ext-%d", i)))
	}
	var pages []sinch.ListContactsResponse
	q := url.Values{"page_size": {"5"}}
	for {
		page := send(t, srv, "GET", projectPath+"/contacts?"+q.Encode(), "").list(t)
		pages = append(pages, page)
		if page.NextPageToken == "" || len(pages) > 3 {
			break
		}
		q.Set("page_token", page.NextPageToken)
	}
	if len(pages) != 2 || len(pages[0].Contacts) != 5 || len(pages[1].Contacts) != 0 || pages[1].NextPageToken != "" {
		t.Errorf("pages %+v, want 5 contacts with a token, then an empty last page", pages)
	}
	// A filter that matches nothing still answers one empty page.
	none := send(t, srv, "GET", projectPath+"/contacts?external_id=nobody", "").list(t)
	if len(none.Contacts) != 0 || none.NextPageToken != "" {
		t.Errorf("no match: %+v", none)
	}
	e.SetEmptyLastPage(false)
	if page := send(t, srv, "GET", projectPath+"/contacts?page_size=5", "").list(t); page.NextPageToken != "" {
		t.Errorf("with the option off, a full last page has token %q", page.NextPageToken)
	}
}
