package sync_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/sinch/sinchtest"
	"github.com/syncd/syncd/state"
	contactsync "github.com/syncd/syncd/sync"
)

// A customer messages first, so Sinch auto-creates a contact holding their
// phone (no external_id); later their CRM row is entered. The next
// incremental run adopts that contact with one patch, as a full run would,
// and the runs after it look nothing up.
func TestIncrementalAdoptsAWalkIn(t *testing.T) {
	rec, emu, store := newChaosReconciler(t, sinchtest.Faults{})
	rows := chaosRows(4, "Person")
	if err := crm.UpsertRecords(t.Context(), store.SQL(), "crm_contacts", rows[:3]); err != nil {
		t.Fatal(err)
	}
	mustRun(t, rec, state.RunFull)
	walkIn := emu.AutoCreate(sinch.ChannelIdentity{Channel: "SMS", Identity: "46730000003"})
	if err := crm.UpsertRecords(t.Context(), store.SQL(), "crm_contacts", rows[3:]); err != nil {
		t.Fatal(err)
	}
	emu.ResetCalls()
	rep := mustRun(t, rec, state.RunIncremental)
	if n, u := writes(emu), emu.Calls(sinchtest.OpUpdate); n != 1 || u != 1 {
		t.Errorf("the incremental run wrote %v, want one patch", emu.CallCounts())
	}
	if cs := byExternalID(emu)["crm-00003"]; len(cs) != 1 || cs[0].ID != walkIn.ID {
		t.Errorf("crm-00003 has %v, want the walk-in's contact %s", cs, walkIn.ID)
	}
	if rep.Deferred != 0 {
		t.Errorf("the run deferred %d changes", rep.Deferred)
	}
	emu.ResetCalls()
	for range 3 {
		if rep := mustRun(t, rec, state.RunIncremental); rep.Lookups != 0 || rep.Deferred != 0 {
			t.Errorf("a later incremental run made %d look-ups and deferred %d", rep.Lookups, rep.Deferred)
		}
	}
	emu.ResetCalls()
	mustRun(t, rec, state.RunFull)
	if n := writes(emu); n != 0 {
		t.Errorf("the full run after it wrote %v", emu.CallCounts())
	}
}

// A change whose scope grows past sync.scope_bound (here: a walk-in holding
// the phone five records share) is left to the next full run: counted,
// queued, noted once, not looked up again by the runs after it, shown by
// explain, and decided by the full run, which empties the queue.
func TestScopePastTheBoundIsDeferred(t *testing.T) {
	rec, emu, store := newChaosReconciler(t, sinchtest.Faults{})
	rec.ScopeBound = 4
	rows := chaosRows(6, "Person")
	for i := range rows {
		rows[i].Phone = str("+46730000009")
	}
	if err := crm.UpsertRecords(t.Context(), store.SQL(), "crm_contacts", rows[:5]); err != nil {
		t.Fatal(err)
	}
	mustRun(t, rec, state.RunFull)
	walkIn := emu.AutoCreate(sinch.ChannelIdentity{Channel: "SMS", Identity: "46730000009"})
	if err := crm.UpsertRecords(t.Context(), store.SQL(), "crm_contacts", rows[5:]); err != nil {
		t.Fatal(err)
	}
	emu.ResetCalls()
	rep := mustRun(t, rec, state.RunIncremental)
	if n := writes(emu); n != 0 {
		t.Errorf("the incremental run wrote %v, want nothing", emu.CallCounts())
	}
	if rep.Deferred != 1 || rep.Counts()["deferred"] != 1 {
		t.Errorf("the run deferred %d changes (counts %v), want 1", rep.Deferred, rep.Counts())
	}
	deferredNote := func(rep contactsync.Report) bool {
		return slices.ContainsFunc(rep.Plan.Notes, func(n string) bool {
			return strings.Contains(n, "record crm-00005: deferred to the next full run") && strings.Contains(n, "sync.scope_bound")
		})
	}
	if !deferredNote(rep) {
		t.Errorf("the run does not say what it deferred and why: %q", rep.Plan.Notes)
	}
	queued, err := store.Deferred(t.Context(), "chaos", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(queued) != 1 || queued[0].Kind != state.DeferRecord || queued[0].Key != "crm-00005" || queued[0].RunID != rep.RunID {
		t.Errorf("queue %+v, want crm-00005 deferred by run %d", queued, rep.RunID)
	}

	// The next runs (the row read again within the overlap) neither look
	// it up again nor note it again.
	emu.ResetCalls()
	rep = mustRun(t, rec, state.RunIncremental)
	if rep.Lookups != 0 || emu.Calls(sinchtest.OpList)+emu.Calls(sinchtest.OpGet) != 0 || deferredNote(rep) {
		t.Errorf("the next run made %d look-ups (%v), notes %q", rep.Lookups, emu.CallCounts(), rep.Plan.Notes)
	}

	ex, err := rec.Explain(t.Context(), store, "crm-00005")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(ex.Deferred, func(d contactsync.DeferredView) bool { return d.Queued }) || !strings.Contains(ex.Verdict, "queued for the next full run") {
		t.Errorf("explain says %+v: %s", ex.Deferred, ex.Verdict)
	}

	// The full run decides: the walk-in holds the phone of six records, so
	// it is left alone and crm-00005 gets a contact of its own.
	emu.ResetCalls()
	mustRun(t, rec, state.RunFull)
	if got := byExternalID(emu); len(got["crm-00005"]) != 1 || got["crm-00005"][0].ID == walkIn.ID {
		t.Errorf("after the full run crm-00005 has %v", got["crm-00005"])
	}
	if queued, err := store.Deferred(t.Context(), "chaos", "", nil); err != nil || len(queued) != 0 {
		t.Errorf("after the full run the queue holds %+v (%v)", queued, err)
	}
}

// An identity two records share is noted and left, as a full run leaves
// it: each record gets a contact of its own, and the note names both.
func TestIncrementalNotesASharedIdentity(t *testing.T) {
	rec, emu, store := newChaosReconciler(t, sinchtest.Faults{})
	rows := chaosRows(3, "Person")
	rows[2].Phone = rows[1].Phone
	if err := crm.UpsertRecords(t.Context(), store.SQL(), "crm_contacts", rows[:2]); err != nil {
		t.Fatal(err)
	}
	mustRun(t, rec, state.RunFull)
	if err := crm.UpsertRecords(t.Context(), store.SQL(), "crm_contacts", rows[2:]); err != nil {
		t.Fatal(err)
	}
	emu.ResetCalls()
	rep := mustRun(t, rec, state.RunIncremental)
	if n, c := writes(emu), emu.Calls(sinchtest.OpCreate); n != 1 || c != 1 {
		t.Errorf("the incremental run wrote %v, want one create", emu.CallCounts())
	}
	if !slices.ContainsFunc(rep.Plan.Notes, func(n string) bool { return strings.Contains(n, "crm-00001 and crm-00002 share an identity") }) {
		t.Errorf("the run does not note the shared identity: %q", rep.Plan.Notes)
	}
	emu.ResetCalls()
	full := mustRun(t, rec, state.RunFull)
	if n := writes(emu); n != 0 {
		t.Errorf("the full run after it wrote %v", emu.CallCounts())
	}
	if !slices.ContainsFunc(full.Plan.Notes, func(n string) bool { return strings.Contains(n, "crm-00001 and crm-00002 share an identity") }) {
		t.Errorf("the full run does not note it either: %q", full.Plan.Notes)
	}
}
