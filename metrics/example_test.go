package metrics_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"time"

	"github.com/syncd/syncd/metrics"
	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/state"
	contactsync "github.com/syncd/syncd/sync"
)

// Example wires one Metrics into the Sinch clients and reconcilers of two
// projects and into the daemon's HTTP server, then looks at what a probe
// and a scrape see.
func Example() {
	m := metrics.New()
	eu, us := m.Project("eu"), m.Project("us")

	// Each project's Sinch client reports every HTTP attempt, and its
	// reconciler every run and operation, to the project's view.
	_ = sinch.Config{ProjectID: "demo-eu", KeyID: "demo-key", KeySecret: "local-only", Observer: eu}
	_ = contactsync.Reconciler{Observer: eu}
	_ = sinch.Config{ProjectID: "demo-us", KeyID: "demo-key", KeySecret: "local-only", Observer: us}
	_ = contactsync.Reconciler{Observer: us}

	// The daemon remembers the last run's outcome for /readyz (the probe
	// reads it from another goroutine); Ping would be the database pool's.
	var lastOutcome atomic.Value
	health := metrics.Health{
		Ping: func(ctx context.Context) error { return nil },
		LastRun: func() (state.Outcome, bool) {
			outcome, _ := lastOutcome.Load().(state.Outcome)
			return outcome, outcome != ""
		},
	}
	// In the daemon: &http.Server{Addr: listen, Handler: metrics.Handler(m, health), ReadHeaderTimeout: 5 * time.Second}.
	srv := httptest.NewServer(metrics.Handler(m, health))
	defer srv.Close()

	get := func(path string) string {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}

	fmt.Print("/readyz: ", get("/readyz"))

	// What one failed full run of eu reports, and a succeeded one of us.
	eu.ObserveCall(sinch.OpList, http.StatusOK, 120*time.Millisecond)
	eu.ObserveCall(sinch.OpCreate, http.StatusTooManyRequests, 40*time.Millisecond)
	eu.ObserveCall(sinch.OpCreate, 0, 10*time.Second) // no answer: code "error"
	eu.OperationFinished(planner.OpCreate, state.StatusFailed)
	eu.RunFinished(state.RunFull, state.OutcomeFailed, 11*time.Second)
	lastOutcome.Store(state.OutcomeFailed)
	us.ObserveCall(sinch.OpList, http.StatusOK, 80*time.Millisecond)
	us.RunFinished(state.RunFull, state.OutcomeSucceeded, 2*time.Second)

	fmt.Print("/readyz: ", get("/readyz"))
	fmt.Print("/healthz: ", get("/healthz"))

	sc := bufio.NewScanner(strings.NewReader(get("/metrics")))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "syncd_sinch_calls_total") || strings.HasPrefix(line, `syncd_runs_total{kind="full"`) {
			fmt.Println(line)
		}
	}
	// Output:
	// /readyz: ok
	// /readyz: not ready: last run failed
	// /healthz: ok
	// syncd_runs_total{kind="full",outcome="failed",project="eu"} 1
	// syncd_runs_total{kind="full",outcome="failed",project="us"} 0
	// syncd_runs_total{kind="full",outcome="interrupted",project="eu"} 0
	// syncd_runs_total{kind="full",outcome="interrupted",project="us"} 0
	// syncd_runs_total{kind="full",outcome="refused",project="eu"} 0
	// syncd_runs_total{kind="full",outcome="refused",project="us"} 0
	// syncd_runs_total{kind="full",outcome="succeeded",project="eu"} 0
	// syncd_runs_total{kind="full",outcome="succeeded",project="us"} 1
	// syncd_sinch_calls_total{code="200",operation="list",project="eu"} 1
	// syncd_sinch_calls_total{code="200",operation="list",project="us"} 1
	// syncd_sinch_calls_total{code="429",operation="create",project="eu"} 1
	// syncd_sinch_calls_total{code="error",operation="create",project="eu"} 1
}
