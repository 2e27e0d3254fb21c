package sinch_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/sinch/sinchtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock stands in for the client's clock: sleeping returns at once and
// moves the fake time on, so backoffs and Retry-After cost nothing.
type fakeClock struct {
	mu      sync.Mutex
	t       time.Time
	slept   []time.Duration
	onSleep func(time.Duration)
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

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.slept = append(c.slept, d)
	hook := c.onSleep
	c.mu.Unlock()
	if hook != nil {
		hook(d)
	}
	return ctx.Err()
}

// OnSleep runs f on every sleep, after the fake time moved.
func (c *fakeClock) OnSleep(f func(time.Duration)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onSleep = f
}

func (c *fakeClock) Slept() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.slept...)
}

// request is what the recording handler saw.
type request struct {
	method, path, rawQuery, authorization string
}

// env is a client wired to an emulator through a recording handler.
type env struct {
	emu    *sinchtest.Emulator
	srv    *httptest.Server
	client *sinch.Client
	clock  *fakeClock

	mu       sync.Mutex
	requests []request
}

// newEnv starts an emulator and a client tuned for fast tests: no client
// side rate limit to speak of, millisecond backoffs, a fake clock.
func newEnv(t *testing.T, opts sinchtest.Options, tune ...func(*sinch.Config)) *env {
	t.Helper()
	e := &env{emu: sinchtest.New(opts), clock: newFakeClock()}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.requests = append(e.requests, request{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization")})
		e.mu.Unlock()
		e.emu.ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close)
	cfg := e.emu.ClientConfig(e.srv.URL)
	fast(&cfg)
	cfg.Logger = zaptest.NewLogger(t)
	for _, f := range tune {
		f(&cfg)
	}
	e.client = newClient(t, cfg)
	sinch.SetClock(e.client, e.clock.Now, e.clock.Sleep)
	return e
}

func fast(cfg *sinch.Config) {
	cfg.RateLimitRPS = 10000
	cfg.MinBackoff = time.Millisecond
	cfg.MaxBackoff = 10 * time.Millisecond
	cfg.Timeout = 5 * time.Second
}

func (e *env) Requests() []request {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]request(nil), e.requests...)
}

// healAfterFirstSleep clears the emulator's faults when the client first
// backs off, so the retry meets a healthy server.
func (e *env) healAfterFirstSleep() {
	e.clock.OnSleep(func(time.Duration) { e.emu.SetFaults(sinchtest.Faults{}) })
}

func newClient(t *testing.T, cfg sinch.Config) *sinch.Client {
	t.Helper()
	c, err := sinch.NewClient(cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// serve starts a plain test server around h.
func serve(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func sms(number string) sinch.ChannelIdentity {
	return sinch.ChannelIdentity{Channel: "SMS", Identity: number}
}

func contact(ext string) sinch.Contact {
	return sinch.Contact{ChannelIdentities: []sinch.ChannelIdentity{sms("+46732000000")}, Language: "EN_US", ExternalID: ext}
}

// apiError asserts that err is an *APIError and returns it.
func apiError(t *testing.T, err error) *sinch.APIError {
	t.Helper()
	var ae *sinch.APIError
	if err == nil {
		t.Fatal("no error")
	}
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T) is not an *APIError", err, err)
	}
	return ae
}

type countingObserver struct {
	mu    sync.Mutex
	calls []observed
}

type observed struct {
	op     string
	status int
}

func (o *countingObserver) ObserveCall(op string, status int, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, observed{op, status})
}

func (o *countingObserver) Calls() []observed {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]observed(nil), o.calls...)
}

// testSecret is long enough that redacting it leaves messages readable, as a
// real key secret would.
const testSecret = "test-key-secret-0123456789"
