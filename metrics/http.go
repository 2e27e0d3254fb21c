package metrics

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/syncd/syncd/state"
)

// PingTimeout bounds the database ping behind /readyz. It is shorter than
// the usual probe timeouts, so the probe answers 503 before its client
// gives up and the reason reaches whoever is looking.
const PingTimeout = 2 * time.Second

// Health is what /readyz checks. A nil field is not checked.
type Health struct {
	Ping    func(ctx context.Context) error         // database reachable?
	LastRun func() (outcome state.Outcome, ok bool) // outcome of the last finished run, ok=false before any run
	// FailedBecause, when set, says why the last run failed, for /readyz.
	FailedBecause func() string
	// Roles, when set, says which projects this process is active for and
	// which it stands by for; /readyz adds it to its answer either way.
	Roles func() string
}

// Handler serves the daemon's HTTP endpoints:
//
//   - GET /healthz: 200 "ok" while the process can answer. It checks
//     nothing else, on purpose: a liveness probe that fails when the
//     database is down gets a healthy daemon restarted in a loop.
//   - GET /readyz: 200 "ok" when h.Ping succeeds within [PingTimeout] and
//     the last finished run did not fail; otherwise 503 with a one-line
//     reason. Either answer ends with h.Roles in parentheses when it says
//     something ("ok (active for eu; standing by for us)"). An interrupted run (a shutdown) does not count as failed, and
//     neither does having no run yet.
//   - GET /metrics: m's registry in the Prometheus exposition format. With
//     a nil m there is no /metrics.
//
// Any other path is 404; another method on these paths is 405. GET also
// answers HEAD.
func Handler(m *Metrics, h Health) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		roles := ""
		if h.Roles != nil {
			if r := h.Roles(); r != "" {
				roles = " (" + r + ")"
			}
		}
		if reason := h.notReady(r.Context()); reason != "" {
			writeText(w, http.StatusServiceUnavailable, "not ready: "+reason+roles)
			return
		}
		writeText(w, http.StatusOK, "ok"+roles)
	})
	if m != nil {
		mux.Handle("GET /metrics", m.scrape)
	}
	return mux
}

// notReady returns why the daemon is not ready, or "" when it is.
func (h Health) notReady(ctx context.Context) string {
	if h.Ping != nil {
		if err := ping(ctx, h.Ping); err != nil {
			return "database: " + err.Error()
		}
	}
	if h.LastRun != nil {
		if outcome, ok := h.LastRun(); ok && outcome == state.OutcomeFailed {
			if h.FailedBecause != nil {
				if why := h.FailedBecause(); why != "" {
					return "last run failed: " + why
				}
			}
			return "last run failed"
		}
	}
	return ""
}

// ping calls f with a context that expires after PingTimeout, and returns
// at that deadline even if f ignores its context: the probe must answer in
// time whatever the driver does. f then finishes on its own and its result
// is dropped.
func ping(ctx context.Context, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, PingTimeout)
	defer cancel()
	done := make(chan error, 1) // buffered: a late f must not block forever
	go func() {
		// f runs outside net/http's handler goroutine, whose recover would
		// otherwise have caught a panic; a broken check must fail the probe,
		// not kill the daemon.
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("ping panicked: %v", p)
			}
		}()
		done <- f(ctx)
	}()
	select {
	case err := <-done:
		if err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			return fmt.Errorf("ping timed out after %s", PingTimeout)
		}
		return err
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("ping timed out after %s", PingTimeout)
		}
		return ctx.Err() // the client went away
	}
}

// writeText writes msg as one line of plain text. Line breaks inside msg (a
// driver's multi-line error) are flattened so the reason stays one line.
func writeText(w http.ResponseWriter, code int, msg string) {
	msg = strings.Join(strings.Fields(msg), " ")
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	// A probe answer is about this instant; no proxy may replay it.
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = fmt.Fprintln(w, msg)
}
