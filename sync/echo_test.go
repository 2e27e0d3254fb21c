package sync_test

import (
	"context"
	"flag"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/sinch/sinchtest"
	"github.com/syncd/syncd/state"
	contactsync "github.com/syncd/syncd/sync"
	"github.com/syncd/syncd/webhook"
)

var echoSharedEvery = flag.Int("echo.shared_every", 100, "BenchmarkBackfillEchoes: one record in this many shares its phone with the one before")

// backfillEchoes is what draining the echoes of a backfill cost.
type backfillEchoes struct {
	creates   int            // contacts the backfill created
	events    int            // events its callbacks stored
	byTrigger map[string]int // of those, by trigger
	calls     map[string]int // Sinch calls the event runs made, by operation
	total     int            // all of them, tokens aside
	drain     time.Duration  // the event run's
}

// drainBackfillEchoes backfills rows CRM records, one in sharedEvery
// sharing its phone number with the record before it, with a webhook
// registered on the emulator: Sinch posts the signed callbacks of syncd's
// own writes (a CONTACT_CREATE each, and a CONTACT_IDENTITIES_DUPLICATION
// where a create repeats an identity). Then event runs drain the queue,
// and it counts the Sinch calls they made.
func drainBackfillEchoes(tb testing.TB, rows, sharedEvery int) backfillEchoes {
	tb.Helper()
	t, _ := tb.(*testing.T)
	var (
		rec   = newEchoRig(tb)
		ctx   = tb.Context()
		queue = rec.store.Events()
	)
	recs := chaosRows(rows, "Person")
	for i := sharedEvery; i < rows; i += sharedEvery {
		recs[i].Phone = recs[i-1].Phone // two people, one line
	}
	if err := crm.UpsertRecords(ctx, rec.store.SQL(), "crm_contacts", recs); err != nil {
		tb.Fatal(err)
	}
	rep, err := rec.rec.Run(ctx, state.RunFull, false)
	if err != nil || rep.Outcome != state.OutcomeSucceeded {
		tb.Fatalf("backfill: %s %v %v", rep.Outcome, err, rep.Errors)
	}
	idle, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := rec.emu.Idle(idle); err != nil {
		tb.Fatalf("callbacks not delivered: %v (%+v)", err, rec.emu.CallbackStats())
	}
	if st := rec.emu.CallbackStats(); st.Failed > 0 {
		tb.Fatalf("%d callbacks failed (%+v)", st.Failed, st)
	}
	out := backfillEchoes{creates: rep.Applied.Create, byTrigger: map[string]int{}}
	var counts []struct {
		Trigger string
		N       int
	}
	if err := rec.store.DB().WithContext(ctx).Raw(`SELECT trigger, count(*) AS n FROM syncd.webhook_events
		WHERE done_at IS NULL GROUP BY trigger`).Scan(&counts).Error; err != nil {
		tb.Fatal(err)
	}
	for _, c := range counts {
		out.byTrigger[c.Trigger] = c.N
		out.events += c.N
	}

	rec.emu.ResetCalls()
	started := time.Now()
	ev, err := rec.rec.Run(ctx, state.RunEvents, false)
	out.drain = time.Since(started)
	if err != nil || ev.Outcome != state.OutcomeSucceeded {
		tb.Fatalf("event run: %s %v %v", ev.Outcome, err, ev.Errors)
	}
	if n := writes(rec.emu); n != 0 {
		tb.Errorf("the echoes made %d writes (%v)", n, rec.emu.CallCounts())
	}
	if p, err := queue.Pending(ctx, "chaos", 1); err != nil || len(p) != 0 {
		tb.Fatalf("events left queued: %d, %v", len(p), err)
	}
	out.calls = rec.emu.CallCounts()
	delete(out.calls, sinchtest.OpToken)
	out.total = totalCalls(rec.emu)
	if t != nil {
		t.Logf("%d creates, %d events %v; the event run made %d Sinch calls %v", out.creates, out.events, out.byTrigger, out.total, out.calls)
	}
	return out
}

// echoRig is a reconciler, its store and the emulator, with the
// emulator's webhook registered to a real handler that stores the events.
type echoRig struct {
	rec   *contactsync.Reconciler
	emu   *sinchtest.Emulator
	store *state.Store
}

func newEchoRig(tb testing.TB) echoRig {
	tb.Helper()
	rec, emu, store := newChaosReconciler(tb, sinchtest.Faults{})
	queue := store.Events()
	rec.Events = queue
	h := webhook.NewHandler(webhook.Config{Secret: eventSecret, ProjectID: "chaos", Store: webhook.NewStore(queue),
		Logger: zaptest.NewLogger(tb, zaptest.Level(zap.ErrorLevel))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.Run(ctx) }()
	srv := httptest.NewServer(h)
	tb.Cleanup(func() { emu.Close(); srv.Close(); cancel(); <-done })
	if _, err := rec.Sinch.(*sinch.Client).CreateWebhook(tb.Context(), sinch.Webhook{AppID: "app", Target: srv.URL, Secret: eventSecret,
		Triggers: webhook.Triggers()}); err != nil {
		tb.Fatal(err)
	}
	return echoRig{rec: rec, emu: emu, store: store}
}

// The echoes of a backfill are recognised from the journal: each
// CONTACT_CREATE carries exactly the contact Sinch answered syncd's create
// with, and a CONTACT_IDENTITIES_DUPLICATION (one for each record sharing
// its phone number with another) names only contacts syncd wrote: neither
// costs a call.
func TestBackfillEchoesCostFewCalls(t *testing.T) {
	for _, tc := range []struct {
		name        string
		sharedEvery int
	}{
		{"every phone its own", 1 << 30},
		{"one record in a hundred sharing a phone", 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := drainBackfillEchoes(t, 3000, tc.sharedEvery)
			dups := got.byTrigger[webhook.TriggerDuplication]
			if got.byTrigger[webhook.TriggerCreate] != got.creates || got.events != got.creates+dups {
				t.Errorf("events %v for %d creates, want a CONTACT_CREATE each and the duplications", got.byTrigger, got.creates)
			}
			if want := (3000 - 1) / tc.sharedEvery; dups != want {
				t.Errorf("%d duplications, want %d", dups, want)
			}
			if got.total != 0 {
				t.Errorf("draining the echoes cost %d Sinch calls (%v), want none", got.total, got.calls)
			}
		})
	}
}

// BenchmarkBackfillEchoes reports what draining the echoes of a
// 3,000-contact backfill costs, for docs/benchmarks.md: one record in
// -echo.shared_every sharing its phone with another.
func BenchmarkBackfillEchoes(b *testing.B) {
	sharedEvery := *echoSharedEvery
	for range b.N {
		got := drainBackfillEchoes(b, 3000, sharedEvery)
		b.ReportMetric(float64(got.events), "events")
		b.ReportMetric(float64(got.total), "calls")
		b.ReportMetric(float64(got.calls[sinchtest.OpGet]), "gets")
		b.ReportMetric(float64(got.calls[sinchtest.OpList]), "lists")
		b.ReportMetric(float64(got.drain.Milliseconds()), "drain-ms")
	}
}

// Each kind of syncd's own write comes back as an event the journal
// proves an echo of, and costs no call: a patch's CONTACT_UPDATE, a
// delete's CONTACT_DELETE, a merge's CONTACT_MERGE (and the patch that
// follows it), a create's CONTACT_CREATE.
func TestEchoesOfEveryWriteCostNoCall(t *testing.T) {
	rig := newEchoRig(t)
	ctx := t.Context()
	if err := crm.UpsertRecords(ctx, rig.store.SQL(), "crm_contacts", chaosRows(20, "Person")); err != nil {
		t.Fatal(err)
	}
	mustRun(t, rig.rec, state.RunFull)
	rig.drain(t)

	// A patch, a delete, a create, and a twin to merge: a contact holding
	// crm-00003's phone, which Sinch made without telling (seeded).
	execSQL(t, rig.store, `UPDATE crm_contacts SET display_name = 'Renamed', updated_at = now() WHERE external_id = 'crm-00001'`)
	execSQL(t, rig.store, `UPDATE crm_contacts SET deleted_at = now(), updated_at = now() WHERE external_id = 'crm-00002'`)
	if err := crm.UpsertRecords(ctx, rig.store.SQL(), "crm_contacts", []crm.Record{{ExternalID: "crm-new",
		DisplayName: str("Newcomer"), Phone: str("+46739999999"), UpdatedAt: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	rig.emu.Seed(sinch.Contact{Language: "EN_US", ChannelIdentities: []sinch.ChannelIdentity{{Channel: "SMS", Identity: "46730000003"}}})
	rep := mustRun(t, rig.rec, state.RunFull)
	if a := rep.Applied; a.Create != 1 || a.Delete != 1 || a.Merge != 1 || a.Patch < 1 {
		t.Fatalf("the full run applied %+v, want a create, a delete, a merge and patches", a)
	}
	got := rig.drain(t)
	for _, trigger := range []string{webhook.TriggerCreate, webhook.TriggerUpdate, webhook.TriggerDelete, webhook.TriggerMerge} {
		if got[trigger] == 0 {
			t.Errorf("no %s event among %v", trigger, got)
		}
	}
	if n := totalCalls(rig.emu); n != 0 {
		t.Errorf("the echoes cost %d calls (%v), want none", n, rig.emu.CallCounts())
	}
}

// drain waits for the emulator's callbacks, runs the events they stored
// and returns them by trigger; it checks that none is left.
func (rig echoRig) drain(t *testing.T) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := rig.emu.Idle(ctx); err != nil {
		t.Fatalf("callbacks not delivered: %v (%+v)", err, rig.emu.CallbackStats())
	}
	var counts []struct {
		Trigger string
		N       int
	}
	if err := rig.store.DB().WithContext(ctx).Raw(`SELECT trigger, count(*) AS n FROM syncd.webhook_events
		WHERE done_at IS NULL GROUP BY trigger`).Scan(&counts).Error; err != nil {
		t.Fatal(err)
	}
	rig.emu.ResetCalls()
	mustRun(t, rig.rec, state.RunEvents)
	if p, err := rig.store.Events().Pending(ctx, "chaos", 1); err != nil || len(p) != 0 {
		t.Fatalf("events left queued: %d, %v", len(p), err)
	}
	out := map[string]int{}
	for _, c := range counts {
		out[c.Trigger] = c.N
	}
	return out
}
