package sync_test

import (
	"context"
	"fmt"
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
)

// chaosRows builds n CRM rows with distinct phones.
func chaosRows(n int, name string) []crm.Record {
	rows := make([]crm.Record, n)
	for i := range rows {
		rows[i] = crm.Record{
			ExternalID:  fmt.Sprintf("crm-%05d", i),
			DisplayName: str(fmt.Sprintf("%s %d", name, i)),
			Phone:       str(fmt.Sprintf("+4673%07d", i)),
			UpdatedAt:   time.Now(),
		}
	}
	return rows
}

// newChaosReconciler wires a reconciler to a fresh database and emulator,
// with a client whose backoffs are short enough for a test.
func newChaosReconciler(t testing.TB, faults sinchtest.Faults) (*contactsync.Reconciler, *sinchtest.Emulator, *state.Store) {
	t.Helper()
	store := statetest.NewStore(t)
	emu, srv := sinchtest.Start(t, sinchtest.Options{ProjectID: "chaos", KeyID: "k", KeySecret: "a-realistic-secret", Faults: faults})
	return chaosReconcilerOn(t, store, emu, srv.URL), emu, store
}

// chaosReconcilerOn wires a reconciler to store and the emulator served at
// url.
func chaosReconcilerOn(t testing.TB, store *state.Store, emu *sinchtest.Emulator, url string) *contactsync.Reconciler {
	t.Helper()
	cfg := emu.ClientConfig(url)
	cfg.RateLimitRPS = 5000
	cfg.MaxConcurrency = 16
	cfg.MaxAttempts = 8
	cfg.MinBackoff = time.Millisecond
	cfg.MaxBackoff = 20 * time.Millisecond
	cfg.Timeout = 5 * time.Second
	client, err := sinch.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	return &contactsync.Reconciler{
		CRM: crm.New(store.SQL()), Links: store, Identities: store, Deferrals: store,
		Journal: store, Runs: store, Watermarks: store, Locks: store,
		Sinch: client, Logger: zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)), ProjectID: "chaos",
		Source: crm.Source{Relation: "crm_contacts"}, BatchSize: 1000, Concurrency: 16, Options: planner.DefaultOptions(),
	}
}

// onStore points rec at store's database: the CRM source there and syncd's
// state there.
func onStore(rec *contactsync.Reconciler, store *state.Store) {
	rec.CRM = crm.New(store.SQL())
	rec.Links, rec.Identities, rec.Deferrals, rec.Journal = store, store, store, store
	rec.Runs, rec.Watermarks, rec.Locks = store, store, store
}

// converge runs full reconciles until one succeeds, as the daemon's
// schedule would, and returns how many it took.
func converge(t *testing.T, rec *contactsync.Reconciler) int {
	t.Helper()
	for attempt := 1; attempt <= 5; attempt++ {
		rep, err := rec.Backfill(context.Background(), false)
		if err == nil && rep.Outcome == state.OutcomeSucceeded {
			return attempt
		}
		t.Logf("run %d: outcome %s, %d failed, err %v", attempt, rep.Outcome, rep.Failed, err)
	}
	t.Fatal("no clean run after 5 attempts")
	return 0
}

func totalCalls(emu *sinchtest.Emulator) int {
	n := 0
	for op, c := range emu.CallCounts() {
		if op != sinchtest.OpToken {
			n += c
		}
	}
	return n
}

// TestChaosConverges backfills 2,000 rows through 20% 5xx, 10% 429 and 5%
// dropped connections (half after the write was applied), then pushes an
// edit to 200 rows through the same storm. Sinch ends with exactly one
// contact per record, every edit landed, and the calls stay within twice
// the fault-free count.
func TestChaosConverges(t *testing.T) {
	const n = 2000
	rows := chaosRows(n, "Person")
	edited := chaosRows(n, "Person")
	for i := 0; i < n; i += 10 {
		edited[i].DisplayName = str(fmt.Sprintf("Edited %d", i))
	}
	ctx := context.Background()

	// The same work without faults, for the call budget.
	calm, calmEmu, calmStore := newChaosReconciler(t, sinchtest.Faults{})
	if err := crm.UpsertRecords(ctx, calmStore.SQL(), "crm_contacts", rows); err != nil {
		t.Fatal(err)
	}
	converge(t, calm)
	if err := crm.UpsertRecords(ctx, calmStore.SQL(), "crm_contacts", edited); err != nil {
		t.Fatal(err)
	}
	converge(t, calm)
	budget := 2 * totalCalls(calmEmu)

	rec, emu, store := newChaosReconciler(t, sinchtest.Faults{
		ErrorRate: 0.20, TooManyRequestsRate: 0.10, DropBeforeRate: 0.025, DropAfterRate: 0.025,
		RetryAfter: -1, Seed: 7,
	})
	if err := crm.UpsertRecords(ctx, store.SQL(), "crm_contacts", rows); err != nil {
		t.Fatal(err)
	}
	runs := converge(t, rec)
	if err := crm.UpsertRecords(ctx, store.SQL(), "crm_contacts", edited); err != nil {
		t.Fatal(err)
	}
	runs += converge(t, rec)

	byExt := make(map[string][]sinch.Contact)
	for _, c := range emu.Contacts() {
		byExt[c.ExternalID] = append(byExt[c.ExternalID], c)
	}
	if len(byExt) != n {
		t.Errorf("%d external ids in Sinch, want %d", len(byExt), n)
	}
	for _, r := range edited {
		cs := byExt[r.ExternalID]
		if len(cs) != 1 {
			t.Errorf("%s has %d contacts", r.ExternalID, len(cs))
			continue
		}
		if cs[0].DisplayName != *r.DisplayName {
			t.Errorf("%s name %q, want %q: an update was lost", r.ExternalID, cs[0].DisplayName, *r.DisplayName)
		}
	}
	calls := totalCalls(emu)
	t.Logf("%d runs, %d calls with faults, %d without", runs, calls, budget/2)
	if calls > budget {
		t.Errorf("%d calls under faults, more than twice the %d of a calm run", calls, budget/2)
	}

	emu.SetFaults(sinchtest.Faults{})
	plan, err := rec.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !plan.Empty() {
		t.Errorf("plan after the storm: %v", plan.Summary())
	}
}
