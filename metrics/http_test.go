package metrics_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/syncd/syncd/metrics"
	"github.com/syncd/syncd/state"
)

func pingOK(context.Context) error { return nil }

func pingErr(msg string) func(context.Context) error {
	return func(context.Context) error { return errors.New(msg) }
}

func lastRun(outcome state.Outcome) func() (state.Outcome, bool) {
	return func() (state.Outcome, bool) { return outcome, true }
}

func noRunYet() (state.Outcome, bool) { return "", false }

func TestHandler(t *testing.T) {
	tests := []struct {
		name       string
		health     metrics.Health
		method     string
		path       string
		wantStatus int
		wantBody   string // exact, unless wantPrefix
		wantPrefix bool
	}{
		{"healthz", metrics.Health{Ping: pingOK, LastRun: noRunYet}, "GET", "/healthz", 200, "ok\n", false},
		{"healthz ignores the database", metrics.Health{Ping: pingErr("connection refused")}, "GET", "/healthz", 200, "ok\n", false},
		{"healthz ignores a failed run", metrics.Health{Ping: pingOK, LastRun: lastRun(state.OutcomeFailed)}, "GET", "/healthz", 200, "ok\n", false},
		{"healthz answers HEAD", metrics.Health{}, "HEAD", "/healthz", 200, "", false},

		{"readyz before any run", metrics.Health{Ping: pingOK, LastRun: noRunYet}, "GET", "/readyz", 200, "ok\n", false},
		{"readyz after a success", metrics.Health{Ping: pingOK, LastRun: lastRun(state.OutcomeSucceeded)}, "GET", "/readyz", 200, "ok\n", false},
		{"readyz after an interrupted run", metrics.Health{Ping: pingOK, LastRun: lastRun(state.OutcomeInterrupted)}, "GET", "/readyz", 200, "ok\n", false},
		{"readyz with nothing to check", metrics.Health{}, "GET", "/readyz", 200, "ok\n", false},
		{"readyz when the database is down", metrics.Health{Ping: pingErr("dial tcp 127.0.0.1:5432: connection refused"), LastRun: noRunYet}, "GET", "/readyz", 503,
			"not ready: database: dial tcp 127.0.0.1:5432: connection refused\n", false},
		{"readyz after a failed run", metrics.Health{Ping: pingOK, LastRun: lastRun(state.OutcomeFailed)}, "GET", "/readyz", 503, "not ready: last run failed\n", false},
		{"readyz says why the last run failed", metrics.Health{Ping: pingOK, LastRun: lastRun(state.OutcomeFailed),
			FailedBecause: func() string { return "3 operations failed" }}, "GET", "/readyz", 503, "not ready: last run failed: 3 operations failed\n", false},
		{"readyz reports the database first", metrics.Health{Ping: pingErr("down"), LastRun: lastRun(state.OutcomeFailed)}, "GET", "/readyz", 503, "not ready: database: down\n", false},
		{"readyz reason stays on one line", metrics.Health{Ping: pingErr("server said:\n  FATAL: too many clients\r\n")}, "GET", "/readyz", 503,
			"not ready: database: server said: FATAL: too many clients\n", false},
		{"readyz survives a panicking ping", metrics.Health{Ping: func(context.Context) error { panic("boom") }}, "GET", "/readyz", 503, "not ready: database: ping panicked: boom\n", false},
		{"readyz HEAD when not ready", metrics.Health{Ping: pingErr("down")}, "HEAD", "/readyz", 503, "", false},

		{"metrics", metrics.Health{}, "GET", "/metrics", 200, "# HELP ", true},
		{"metrics does not depend on readiness", metrics.Health{Ping: pingErr("down")}, "GET", "/metrics", 200, "# HELP ", true},

		{"root", metrics.Health{}, "GET", "/", 404, "404 page not found\n", false},
		{"unknown path", metrics.Health{}, "GET", "/debug/pprof/", 404, "404 page not found\n", false},
		{"trailing slash", metrics.Health{}, "GET", "/healthz/", 404, "404 page not found\n", false},
		{"below metrics", metrics.Health{}, "GET", "/metrics/syncd_lock_held", 404, "404 page not found\n", false},
		{"wrong method", metrics.Health{}, "POST", "/readyz", 405, "Method Not Allowed\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(metrics.Handler(metrics.New(), tt.health))
			defer srv.Close()
			req, err := http.NewRequestWithContext(t.Context(), tt.method, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d (body %q)", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantPrefix && !strings.HasPrefix(string(body), tt.wantBody) || !tt.wantPrefix && string(body) != tt.wantBody {
				t.Errorf("body %q, want %q", body, tt.wantBody)
			}
			if (tt.path == "/readyz" || tt.path == "/healthz") && tt.method == "GET" && tt.wantStatus != 405 {
				if got := resp.Header.Get("Content-Type"); got != "text/plain; charset=utf-8" {
					t.Errorf("Content-Type %q", got)
				}
				if got := resp.Header.Get("Cache-Control"); got != "no-store" {
					t.Errorf("Cache-Control %q, want no-store", got)
				}
			}
		})
	}
}

// /metrics over a real connection serves what the hooks recorded, and
// counts its own scrapes.
func TestMetricsEndpoint(t *testing.T) {
	m, p := newProject()
	p.SetLockHeld(true)
	p.RowsRejected(2)
	srv := httptest.NewServer(metrics.Handler(m, metrics.Health{}))
	defer srv.Close()

	get := func() map[string]float64 {
		t.Helper()
		resp, err := srv.Client().Get(srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("Content-Type %q, want the text format", ct)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return parseExposition(t, string(body))
	}
	get()
	got := get()
	checkSamples(t, ofProject(got, testProject), map[string]float64{
		`syncd_lock_held`:           1,
		`syncd_rejected_rows_total`: 2,
	}, nil)
	checkSamples(t, got, map[string]float64{
		// The first scrape had finished when the second was gathered.
		`promhttp_metric_handler_requests_total{code="200"}`: 1,
	}, nil)
}

// Without a Metrics the handler still serves the probes.
func TestHandlerWithoutMetrics(t *testing.T) {
	tests := []struct {
		path string
		want int
	}{
		{"/healthz", 200},
		{"/readyz", 200},
		{"/metrics", 404},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			metrics.Handler(nil, metrics.Health{Ping: pingOK}).ServeHTTP(rec, httptest.NewRequest("GET", tt.path, nil))
			if rec.Code != tt.want {
				t.Errorf("status %d, want %d", rec.Code, tt.want)
			}
		})
	}
}

// The ping behind /readyz gets a context that ends PingTimeout after the
// request came in.
func TestReadyzPingHasDeadline(t *testing.T) {
	var deadline time.Time
	var hasDeadline bool
	h := metrics.Health{Ping: func(ctx context.Context) error {
		deadline, hasDeadline = ctx.Deadline()
		return nil
	}}
	start := time.Now()
	rec := httptest.NewRecorder()
	metrics.Handler(nil, h).ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	end := time.Now()
	if rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	if !hasDeadline {
		t.Fatal("ping context has no deadline")
	}
	// The deadline is PingTimeout after some instant during the request.
	if deadline.Before(start.Add(metrics.PingTimeout)) || deadline.After(end.Add(metrics.PingTimeout)) {
		t.Errorf("ping deadline %s after the request started (which took %s), want %s", deadline.Sub(start), end.Sub(start), metrics.PingTimeout)
	}
}

// A slow database makes /readyz answer 503 at PingTimeout, whether or not
// the ping honours its context. synctest's clock makes the wait instant.
func TestReadyzPingTimeout(t *testing.T) {
	tests := []struct {
		name       string
		ping       func(ctx context.Context, release <-chan struct{}) error
		wantStatus int
		wantBody   string
		wantTook   time.Duration
	}{
		{
			name: "ping honours its context",
			ping: func(ctx context.Context, _ <-chan struct{}) error {
				<-ctx.Done()
				return ctx.Err()
			},
			wantStatus: 503,
			wantBody:   "not ready: database: ping timed out after 2s\n",
			wantTook:   metrics.PingTimeout,
		},
		{
			name: "ping ignores its context",
			ping: func(_ context.Context, release <-chan struct{}) error {
				<-release
				return nil
			},
			wantStatus: 503,
			wantBody:   "not ready: database: ping timed out after 2s\n",
			wantTook:   metrics.PingTimeout,
		},
		{
			name: "a slow ping inside the limit",
			ping: func(ctx context.Context, _ <-chan struct{}) error {
				select {
				case <-time.After(metrics.PingTimeout - time.Millisecond):
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			},
			wantStatus: 200,
			wantBody:   "ok\n",
			wantTook:   metrics.PingTimeout - time.Millisecond,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				release := make(chan struct{})
				defer close(release) // lets a ping that ignored its context finish
				h := metrics.Health{Ping: func(ctx context.Context) error { return tt.ping(ctx, release) }}
				start := time.Now()
				rec := httptest.NewRecorder()
				metrics.Handler(nil, h).ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
				if took := time.Since(start); took != tt.wantTook {
					t.Errorf("answered after %s, want %s", took, tt.wantTook)
				}
				if rec.Code != tt.wantStatus || rec.Body.String() != tt.wantBody {
					t.Errorf("got %d %q, want %d %q", rec.Code, rec.Body, tt.wantStatus, tt.wantBody)
				}
			})
		})
	}
}
