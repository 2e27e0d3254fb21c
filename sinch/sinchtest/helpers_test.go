package sinchtest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/sinch/sinchtest"
)

const projectPath = "/v1/projects/" + sinchtest.DefaultProjectID

// answer is one raw HTTP exchange with the emulator.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// rpc decodes Sinch's error body.
func (a answer) rpc(t *testing.T) (code int, status, message string) {
	t.Helper()
	var b struct {
		Error struct {
			Code    int               `json:"code"`
			Message string            `json:"message"`
			Status  string            `json:"status"`
			Details []json.RawMessage `json:"details"`
		} `json:"error"`
	}
	if err := json.Unmarshal(a.body, &b); err != nil {
		t.Fatalf("error body %q: %v", a.body, err)
	}
	if b.Error.Details == nil {
		t.Errorf("error body %s has no details array", a.body)
	}
	return b.Error.Code, b.Error.Status, b.Error.Message
}

func (a answer) contact(t *testing.T) sinch.Contact {
	t.Helper()
	var c sinch.Contact
	if err := json.Unmarshal(a.body, &c); err != nil {
		t.Fatalf("contact %q: %v", a.body, err)
	}
	return c
}

func (a answer) list(t *testing.T) sinch.ListContactsResponse {
	t.Helper()
	var l sinch.ListContactsResponse
	if err := json.Unmarshal(a.body, &l); err != nil {
		t.Fatalf("list %q: %v", a.body, err)
	}
	return l
}

// send makes one request with the emulator's Basic credentials unless an
// option changes them. It fails the test only on a transport error.
func send(t *testing.T, srv *httptest.Server, method, path, body string, opts ...func(*http.Request)) answer {
	t.Helper()
	a, err := trySend(t, srv, method, path, body, opts...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return a
}

func trySend(t *testing.T, srv *httptest.Server, method, path, body string, opts ...func(*http.Request)) (answer, error) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(sinchtest.DefaultKeyID, sinchtest.DefaultKeySecret)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: b}, err
}

func withHeader(k, v string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set(k, v) }
}

func withBasic(id, secret string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(id, secret) }
}

func withoutAuth(r *http.Request) { r.Header.Del("Authorization") }

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func sms(number string) sinch.ChannelIdentity {
	return sinch.ChannelIdentity{Channel: "SMS", Identity: number}
}

// validContact is a contact a create accepts.
func validContact(ext string) sinch.Contact {
	return sinch.Contact{
		ChannelIdentities: []sinch.ChannelIdentity{sms("+46732000000")},
		Language:          "EN_US",
		ExternalID:        ext,
	}
}
