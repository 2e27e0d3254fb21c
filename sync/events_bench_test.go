package sync_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	stdsync "sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/sinch/sinchtest"
	"github.com/syncd/syncd/state"
	"github.com/syncd/syncd/state/statetest"
	contactsync "github.com/syncd/syncd/sync"
	"github.com/syncd/syncd/webhook"
)

// lagObserver keeps the lag of every processed event, and the parked
// count it was last told.
type lagObserver struct {
	mu     stdsync.Mutex
	lags   []time.Duration
	parked int
}

func (o *lagObserver) EventApplied(_ string, lag time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.lags = append(o.lags, lag)
}
func (o *lagObserver) EventsParked(n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.parked = n
}
func (o *lagObserver) RunFinished(state.RunKind, state.Outcome, time.Duration) {}
func (o *lagObserver) OperationFinished(planner.OpKind, state.Status)          {}
func (o *lagObserver) RowsRejected(int)                                        {}
func (o *lagObserver) ChangesDeferred(state.RunKind, int)                      {}
func (o *lagObserver) ReadHorizonHeld(time.Duration)                           {}
func (o *lagObserver) LockWaited(time.Duration)                                {}
func (o *lagObserver) SetLockHeld(bool)                                        {}

func (o *lagObserver) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.lags)
}

// BenchmarkEventLag measures the end-to-end lag of Sinch-side edits at 100
// a second: a person edits a contact in the emulator, which posts the
// signed callback to the webhook handler, which stores it; the daemon's
// event runs read the contact afresh and put the edit back. The lag is
// from the event's event_time to the end of the run that processed it
// (syncd_webhook_event_lag_seconds); every edit must be put back with one
// patch, and the echoes of those patches must cost none.
func BenchmarkEventLag(b *testing.B) {
	const rows = 500
	store := statetest.NewStore(b)
	emu, srv := sinchtest.Start(b, sinchtest.Options{ProjectID: "lag", KeyID: "k", KeySecret: "a-realistic-secret"})
	cfg := emu.ClientConfig(srv.URL)
	cfg.RateLimitRPS = 5000
	cfg.MaxConcurrency = 16
	client, err := sinch.NewClient(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(client.CloseIdleConnections)
	obs := &lagObserver{}
	queue := store.Events()
	log := zaptest.NewLogger(b, zaptest.Level(zap.ErrorLevel))
	rec := &contactsync.Reconciler{
		CRM: crm.New(store.SQL()), Links: store, Identities: store, Deferrals: store,
		Journal: store, Runs: store, Watermarks: store, Locks: store,
		Sinch: client, Logger: log, ProjectID: "lag", Source: crm.Source{Relation: "crm_contacts"},
		BatchSize: 1000, Concurrency: 16, Options: planner.DefaultOptions(), Observer: obs, Events: queue,
	}
	recs := make([]crm.Record, rows)
	for i := range recs {
		recs[i] = crm.Record{ExternalID: fmt.Sprintf("crm-%05d", i), DisplayName: ptr(fmt.Sprintf("Person %d", i)),
			Phone: ptr(fmt.Sprintf("+4673%07d", i)), UpdatedAt: time.Now()}
	}
	if err := crm.UpsertRecords(context.Background(), store.SQL(), "crm_contacts", recs); err != nil {
		b.Fatal(err)
	}
	if rep, err := rec.Run(context.Background(), state.RunFull, false); err != nil || rep.Outcome != state.OutcomeSucceeded {
		b.Fatalf("backfill: %v %v", rep.Outcome, err)
	}

	stored := make(chan struct{}, 1)
	h := webhook.NewHandler(webhook.Config{Secret: "s", ProjectID: "lag", Store: webhook.NewStore(queue), Logger: log,
		OnStored: func() {
			select {
			case stored <- struct{}{}:
			default:
			}
		}})
	hsrv := httptest.NewServer(h)
	ctx, cancel := context.WithCancel(context.Background())
	var wg stdsync.WaitGroup
	wg.Go(func() { h.Run(ctx) })
	// The debounce of syncd run: runs start 200 ms after a burst goes
	// quiet, or 1 s into a steady stream like this one.
	d := &contactsync.Daemon{Reconciler: rec, Logger: log, Incremental: "@every 1h", Full: "@every 1h", Events: stored}
	wg.Go(func() { _ = d.Run(ctx, nil) })
	b.Cleanup(func() { hsrv.Close(); cancel(); wg.Wait() })
	if _, err := client.CreateWebhook(context.Background(), sinch.Webhook{AppID: "app", Target: hsrv.URL, Secret: "s", Triggers: webhook.Triggers()}); err != nil {
		b.Fatal(err)
	}
	ids := make([]string, 0, rows)
	for _, c := range emu.Contacts() {
		ids = append(ids, c.ID)
	}
	emu.ResetCalls()

	b.ResetTimer()
	tick := time.NewTicker(10 * time.Millisecond) // 100 edits a second
	for i := range b.N {
		<-tick.C
		id := ids[i%len(ids)]
		if _, err := emu.EditAsPerson(id, func(c *sinch.Contact) { c.DisplayName = fmt.Sprintf("Edit %d", i) }); err != nil {
			b.Fatal(err)
		}
	}
	tick.Stop()
	// Each edit and each fix's echo is an event; wait for all of them.
	deadline := time.Now().Add(2 * time.Minute)
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for {
		idleCtx, idleCancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		idle := emu.Idle(idleCtx) == nil
		idleCancel()
		pending, err := queue.Pending(context.Background(), "lag", 1)
		if err != nil {
			b.Fatal(err)
		}
		if idle && len(pending) == 0 && obs.count() >= b.N {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("events not processed: %d of %d, stats %+v", obs.count(), b.N, emu.CallbackStats())
		}
		<-poll.C
	}
	b.StopTimer()
	for _, c := range emu.Contacts() {
		if c.DisplayName[:5] == "Edit " {
			b.Fatalf("edit of %s (%s) not put back", c.ID, c.ExternalID)
		}
	}
	obs.mu.Lock()
	lags := slices.Clone(obs.lags)
	obs.mu.Unlock()
	slices.Sort(lags)
	b.ReportMetric(float64(lags[len(lags)/2].Milliseconds()), "p50-lag-ms")
	b.ReportMetric(float64(lags[len(lags)*99/100].Milliseconds()), "p99-lag-ms")
	b.ReportMetric(float64(emu.Calls(sinchtest.OpUpdate))/float64(b.N), "patches/edit")
	b.ReportMetric(float64(len(lags)), "events")
}

func ptr(s string) *string { return &s }
