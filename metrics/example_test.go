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
	"github.com/syncd/syncd/sinch"
	contactsync "github.com/syncd/syncd/sync"
)

// Example wires one Metrics into the Sinch client, the reconciler and the
// daemon's HTTP server, then looks at what a probe and a scrape see.
func Example() {
	m := metrics.New()

	// The Sinch client reports every HTTP attempt, and the reconciler every
	// run and operation, to the same Metrics.
	_ = sinch.Config{ProjectID: "demo-project", KeyID: "demo-key", KeySecret: "local-only", Observer: m}
	_ = contactsync.Reconciler{Observer: m}

	// The daemon remembers the last run's outcome for /readyz (the probe
	// reads it from another goroutine); Ping would be the database pool's.
	var lastOutcome atomic.Value
	health := metrics.Health{
		Ping: func(ctx context.Context) error { return nil },
		LastRun: func() (string, bool) {
			outcome, _ := lastOutcome.Load().(string)
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

	// What one failed full run reports.
	m.ObserveCall(sinch.OpList, http.StatusOK, 120*time.Millisecond)
	m.ObserveCall(sinch.OpCreate, http.StatusTooManyRequests, 40*time.Millisecond)
	m.ObserveCall(sinch.OpCreate, 0, 10*time.Second) // no answer: code "error"
	m.OperationFinished(string(contactsync.OpCreate), contactsync.StatusFailed)
	m.RunFinished(contactsync.RunFull, contactsync.OutcomeFailed, 11*time.Second)
	lastOutcome.Store(contactsync.OutcomeFailed)

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
	// syncd_runs_total{kind="full",outcome="failed"} 1
	// syncd_runs_total{kind="full",outcome="interrupted"} 0
	// syncd_runs_total{kind="full",outcome="refused"} 0
	// syncd_runs_total{kind="full",outcome="succeeded"} 0
	// syncd_sinch_calls_total{code="200",operation="list"} 1
	// syncd_sinch_calls_total{code="429",operation="create"} 1
	// syncd_sinch_calls_total{code="error",operation="create"} 1
}
