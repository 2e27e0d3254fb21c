package sync_test

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/sinch/sinchtest"
	"github.com/syncd/syncd/state"
	"github.com/syncd/syncd/state/statetest"
	contactsync "github.com/syncd/syncd/sync"
)

// The end-to-end cases in this file are those an outside review reproduced
// against PostgreSQL and the emulator: each ends by asserting what Sinch
// holds and what the runs wrote.

func execSQL(t *testing.T, store *state.Store, query string, args ...any) {
	t.Helper()
	if err := store.DB().WithContext(t.Context()).Exec(query, args...).Error; err != nil {
		t.Fatalf("exec %q: %v", query, err)
	}
}

func byExternalID(emu *sinchtest.Emulator) map[string][]sinch.Contact {
	out := make(map[string][]sinch.Contact)
	for _, c := range emu.Contacts() {
		out[c.ExternalID] = append(out[c.ExternalID], c)
	}
	return out
}

func writes(emu *sinchtest.Emulator) int {
	return emu.Calls(sinchtest.OpCreate) + emu.Calls(sinchtest.OpUpdate) + emu.Calls(sinchtest.OpMerge) + emu.Calls(sinchtest.OpDelete)
}

func mustRun(t *testing.T, rec *contactsync.Reconciler, kind state.RunKind) contactsync.Report {
	t.Helper()
	rep, err := rec.Run(t.Context(), kind, false)
	if err != nil || rep.Outcome != state.OutcomeSucceeded {
		t.Fatalf("%s run: outcome %s, err %v, errors %v", kind, rep.Outcome, err, rep.Errors)
	}
	return rep
}

// A person sets crm-1's contact to external_id crm-2 in the Sinch
// dashboard. syncd must put it back, never merge it into crm-2's contact
// (that would fuse two people's conversations) nor create a second contact
// for crm-1.
func TestHandEditedExternalIDIsPutBack(t *testing.T) {
	rec, emu, store := newChaosReconciler(t, sinchtest.Faults{})
	ctx := t.Context()
	if err := crm.UpsertRecords(ctx, store.SQL(), "crm_contacts", chaosRows(2, "Person")); err != nil {
		t.Fatal(err)
	}
	mustRun(t, rec, state.RunFull)
	c1 := byExternalID(emu)["crm-00000"][0]
	if _, err := rec.Sinch.UpdateContact(ctx, c1.ID, sinch.Contact{ExternalID: "crm-00001"}, []string{sinch.FieldExternalID}); err != nil {
		t.Fatal(err)
	}
	emu.ResetCalls()
	mustRun(t, rec, state.RunFull)

	if n := emu.Calls(sinchtest.OpMerge) + emu.Calls(sinchtest.OpCreate) + emu.Calls(sinchtest.OpDelete); n != 0 {
		t.Errorf("%d merges, creates or deletes after the hand edit, want 0 (%v)", n, emu.CallCounts())
	}
	got := byExternalID(emu)
	if cs := got["crm-00000"]; len(cs) != 1 || cs[0].ID != c1.ID {
		t.Errorf("crm-00000 has %v, want its own contact %s back", cs, c1.ID)
	}
	if cs := got["crm-00001"]; len(cs) != 1 || cs[0].ID == c1.ID {
		t.Errorf("crm-00001 has %v, want one contact of its own", cs)
	}
}

// A record renamed in the CRM keeps its Sinch contact (and so its
// conversations): re-keyed with one patch, never deleted and created anew.
func TestRenamedRecordKeepsItsContact(t *testing.T) {
	rec, emu, store := newChaosReconciler(t, sinchtest.Faults{})
	if err := crm.UpsertRecords(t.Context(), store.SQL(), "crm_contacts", chaosRows(20, "Person")); err != nil {
		t.Fatal(err)
	}
	mustRun(t, rec, state.RunFull)
	old := byExternalID(emu)["crm-00003"][0]
	execSQL(t, store, `UPDATE crm_contacts SET external_id = 'crm-renamed', updated_at = now() WHERE external_id = 'crm-00003'`)
	emu.ResetCalls()
	mustRun(t, rec, state.RunFull)

	if n := emu.Calls(sinchtest.OpCreate) + emu.Calls(sinchtest.OpDelete) + emu.Calls(sinchtest.OpMerge); n != 0 {
		t.Errorf("the rename cost %v, want one patch", emu.CallCounts())
	}
	got := byExternalID(emu)
	if cs := got["crm-renamed"]; len(cs) != 1 || cs[0].ID != old.ID {
		t.Errorf("crm-renamed has %v, want the old contact %s", cs, old.ID)
	}
	if cs := got["crm-00003"]; len(cs) != 0 {
		t.Errorf("the old external_id is still on %v", cs)
	}
	if plan, err := rec.Plan(t.Context()); err != nil || !plan.Empty() {
		t.Errorf("plan after the rename: %v, %v", plan.Summary(), err)
	}
	links, err := store.Links(t.Context(), "chaos")
	if err != nil {
		t.Fatal(err)
	}
	if l, stale := links["crm-00003"]; stale || links["crm-renamed"].ContactID != old.ID {
		t.Errorf("links: the old one %+v (left: %v), the new one %+v", l, stale, links["crm-renamed"])
	}
	// The old id's link gone, incremental runs have nothing to look up.
	emu.ResetCalls()
	if rep := mustRun(t, rec, state.RunIncremental); rep.Lookups != 0 {
		t.Errorf("an incremental run after the rename made %d lookups (%v)", rep.Lookups, emu.CallCounts())
	}
}

// A record hard-deleted from the CRM whose contact someone already deleted
// in Sinch leaves a link that names nothing: the next full run drops it, so
// incremental runs stop looking its row up.
func TestFullRunDropsLinksThatNameNothing(t *testing.T) {
	rec, emu, store := newChaosReconciler(t, sinchtest.Faults{})
	if err := crm.UpsertRecords(t.Context(), store.SQL(), "crm_contacts", chaosRows(5, "Person")); err != nil {
		t.Fatal(err)
	}
	mustRun(t, rec, state.RunFull)
	if err := emu.DeleteAsPerson(byExternalID(emu)["crm-00003"][0].ID); err != nil {
		t.Fatal(err)
	}
	execSQL(t, store, `DELETE FROM crm_contacts WHERE external_id = 'crm-00003'`)
	emu.ResetCalls()
	// The vanished row's contact is looked for by its external_id and by
	// the id its link names (it may carry another external_id now).
	if rep := mustRun(t, rec, state.RunIncremental); rep.Lookups != 2 {
		t.Errorf("the incremental run made %d lookups, want 2 for the vanished row", rep.Lookups)
	}
	mustRun(t, rec, state.RunFull)
	if n := writes(emu); n != 0 {
		t.Errorf("the runs wrote %v, want nothing", emu.CallCounts())
	}
	links, err := store.Links(t.Context(), "chaos")
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := links["crm-00003"]; ok || len(links) != 4 {
		t.Errorf("links: %d, the gone record's %+v", len(links), l)
	}
	if rep := mustRun(t, rec, state.RunIncremental); rep.Lookups != 0 {
		t.Errorf("an incremental run after the full one made %d lookups, want none", rep.Lookups)
	}
}

// crm-1 is new (SMS P1), crm-2 is linked (P2), and a contact U without
// external_id holds SMS P1 and WHATSAPP P2. A full run leaves U alone (it
// holds identities of two records: adopting it for crm-1 would strip
// crm-2's number from it) and creates crm-1's own contact. The incremental
// run that reads crm-1 grows its scope to crm-2 through U, and decides the
// same, saying why; the full run after it has nothing left to do.
func TestIncrementalAdoptsOnlyWhatAFullRunWould(t *testing.T) {
	rec, emu, store := newChaosReconciler(t, sinchtest.Faults{})
	rows := chaosRows(2, "Person") // phones +46730000000 and +46730000001
	if err := crm.UpsertRecords(t.Context(), store.SQL(), "crm_contacts", rows[1:]); err != nil {
		t.Fatal(err)
	}
	mustRun(t, rec, state.RunFull)
	u := emu.Seed(sinch.Contact{Language: "EN_US", DisplayName: "Someone", ChannelIdentities: []sinch.ChannelIdentity{
		{Channel: "SMS", Identity: "46730000000"}, {Channel: "WHATSAPP", Identity: "46730000001"},
	}})[0]
	if err := crm.UpsertRecords(t.Context(), store.SQL(), "crm_contacts", rows[:1]); err != nil {
		t.Fatal(err)
	}
	emu.ResetCalls()
	rep := mustRun(t, rec, state.RunIncremental)
	if n, c := writes(emu), emu.Calls(sinchtest.OpCreate); n != 1 || c != 1 {
		t.Errorf("the incremental run wrote %v, want one create", emu.CallCounts())
	}
	if !slices.ContainsFunc(rep.Plan.Notes, func(n string) bool { return strings.Contains(n, u.ID+" shares identities with 2 CRM records") }) {
		t.Errorf("the run does not say why U is left alone: notes %q", rep.Plan.Notes)
	}
	emu.ResetCalls()
	mustRun(t, rec, state.RunFull)
	if n := writes(emu); n != 0 {
		t.Errorf("the full run after it wrote %v, want nothing", emu.CallCounts())
	}
	for _, c := range emu.Contacts() {
		if c.ID == u.ID && (c.ExternalID != "" || len(c.ChannelIdentities) != 2) {
			t.Errorf("U was written: %+v", c)
		}
	}
	if got := byExternalID(emu); len(got["crm-00000"]) != 1 || len(got["crm-00001"]) != 1 {
		t.Errorf("after the full run: %v", got)
	}
}

// A row deleted outright (no tombstone) is noticed by the next incremental
// run, not only by the nightly full one.
func TestIncrementalNoticesAVanishedRow(t *testing.T) {
	rec, emu, store := newChaosReconciler(t, sinchtest.Faults{})
	if err := crm.UpsertRecords(t.Context(), store.SQL(), "crm_contacts", chaosRows(20, "Person")); err != nil {
		t.Fatal(err)
	}
	mustRun(t, rec, state.RunFull)
	execSQL(t, store, `DELETE FROM crm_contacts WHERE external_id = 'crm-00007'`)
	emu.ResetCalls()
	mustRun(t, rec, state.RunIncremental)
	if got := emu.Calls(sinchtest.OpDelete); got != 1 {
		t.Errorf("%d deletes, want 1 (%v)", got, emu.CallCounts())
	}
	if cs := byExternalID(emu)["crm-00007"]; len(cs) != 0 {
		t.Errorf("crm-00007 still has %v", cs)
	}
	if links, err := store.Links(t.Context(), "chaos"); err != nil || len(links) != 19 {
		t.Errorf("%d links after the delete, want 19 (%v)", len(links), err)
	}
}

// twiceRead is a CRM reader whose ChangedSince returns a row twice, old and
// then new, as it happens when the row is updated while the changes are
// paged.
type twiceRead struct {
	contactsync.CRM
	stale crm.Record
}

func (s twiceRead) ChangedSince(ctx context.Context, source crm.Source, since time.Time, batchSize int) iter.Seq2[[]crm.Record, error] {
	return func(yield func([]crm.Record, error) bool) {
		if !yield([]crm.Record{s.stale}, nil) {
			return
		}
		for batch, err := range s.CRM.ChangedSince(ctx, source, since, batchSize) {
			if !yield(batch, err) {
				return
			}
		}
	}
}

func TestIncrementalKeepsTheLastReadOfARow(t *testing.T) {
	rec, emu, store := newChaosReconciler(t, sinchtest.Faults{})
	rows := chaosRows(3, "Person")
	if err := crm.UpsertRecords(t.Context(), store.SQL(), "crm_contacts", rows); err != nil {
		t.Fatal(err)
	}
	mustRun(t, rec, state.RunFull)
	stale := rows[1]
	stale.DisplayName = str("Stale name")
	execSQL(t, store, `UPDATE crm_contacts SET display_name = 'New name', updated_at = now() WHERE external_id = 'crm-00001'`)
	rec.CRM = twiceRead{CRM: rec.CRM, stale: stale}
	rep := mustRun(t, rec, state.RunIncremental)
	if len(rep.Plan.Rejected) != 0 {
		t.Errorf("rejected %v", rep.Plan.Rejected)
	}
	if cs := byExternalID(emu)["crm-00001"]; len(cs) != 1 || cs[0].DisplayName != "New name" {
		t.Errorf("crm-00001 is %v, want New name", cs)
	}
}

// A CRM transaction stamps updated_at = now() at its start and may commit
// long after. The watermark must stay before it, however short the overlap,
// so that the row is read once it commits.
func TestWatermarkWaitsForAnOpenTransaction(t *testing.T) {
	rec, emu, store := newChaosReconciler(t, sinchtest.Faults{})
	rec.Overlap = time.Nanosecond
	if err := crm.UpsertRecords(t.Context(), store.SQL(), "crm_contacts", chaosRows(3, "Person")); err != nil {
		t.Fatal(err)
	}
	mustRun(t, rec, state.RunFull)

	tx := store.DB().WithContext(t.Context()).Begin()
	if err := tx.Error; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback() })
	if err := tx.Exec(`UPDATE crm_contacts SET display_name = 'Committed late', updated_at = now() WHERE external_id = 'crm-00002'`).Error; err != nil {
		t.Fatal(err)
	}
	// Runs while the transaction is open see nothing new of it...
	mustRun(t, rec, state.RunIncremental)
	mustRun(t, rec, state.RunIncremental)
	if err := tx.Commit().Error; err != nil {
		t.Fatal(err)
	}
	// ...and the first run after it commits picks the row up.
	mustRun(t, rec, state.RunIncremental)
	if cs := byExternalID(emu)["crm-00002"]; len(cs) != 1 || cs[0].DisplayName != "Committed late" {
		t.Errorf("crm-00002 is %v: a committed change was skipped", cs)
	}
}

// A CRM transaction that began by reading, and writes only minutes later,
// stamps its rows with its start too: the watermark must wait for it from
// its first statement, not only once it holds an xid. Otherwise the rows it
// commits are older than the watermark and no incremental run reads them.
func TestWatermarkWaitsForATransactionThatBeganByReading(t *testing.T) {
	dbURL := statetest.NewDatabase(t)
	store := statetest.OpenStore(t, dbURL)
	rec, emu, _ := newChaosReconciler(t, sinchtest.Faults{})
	onStore(rec, store)
	rec.Overlap = time.Nanosecond
	if err := crm.UpsertRecords(t.Context(), store.SQL(), "crm_contacts", chaosRows(3, "Person")); err != nil {
		t.Fatal(err)
	}
	mustRun(t, rec, state.RunFull)

	crmApp := openSQL(t, dbURL) // the CRM's own connection, not syncd's
	tx, err := crmApp.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback() })
	var n int
	if err := tx.QueryRowContext(t.Context(), `SELECT count(*) FROM crm_contacts`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	// Runs while it only reads see nothing of it...
	mustRun(t, rec, state.RunIncremental)
	mustRun(t, rec, state.RunIncremental)
	if _, err := tx.ExecContext(t.Context(), `UPDATE crm_contacts SET display_name = 'Written late', updated_at = now() WHERE external_id = 'crm-00002'`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	// ...and the first run after it commits picks the row up.
	mustRun(t, rec, state.RunIncremental)
	if cs := byExternalID(emu)["crm-00002"]; len(cs) != 1 || cs[0].DisplayName != "Written late" {
		t.Errorf("crm-00002 is %v: a committed change was skipped", cs)
	}
}

// Merges and deletes cannot be undone: the journal keeps the contacts they
// removed, in full. A run left "running" by a stopped process has its
// unanswered operations closed as unknown by the next run.
func TestJournalKeepsWhatCannotBeUndone(t *testing.T) {
	rec, emu, store := newChaosReconciler(t, sinchtest.Faults{})
	rec.Options.MaxDeleteFraction = 1
	rec.LockGrace = 50 * time.Millisecond // the stopped run is this process's: nothing to wait out
	rows := chaosRows(3, "Person")
	if err := crm.UpsertRecords(t.Context(), store.SQL(), "crm_contacts", rows); err != nil {
		t.Fatal(err)
	}
	mustRun(t, rec, state.RunFull)
	dup := emu.Seed(sinch.Contact{ExternalID: "crm-00000", Language: "EN_US", DisplayName: "Twin",
		ChannelIdentities: []sinch.ChannelIdentity{{Channel: "SMS", Identity: "46730000000"}}})[0]
	orphan := emu.Seed(sinch.Contact{ExternalID: "crm-gone", Language: "EN_US", DisplayName: "Orphan",
		ChannelIdentities: []sinch.ChannelIdentity{{Channel: "SMS", Identity: "46739999999"}}})[0]

	stopped, err := store.StartRun(t.Context(), "chaos", state.RunFull)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.JournalAppend(t.Context(), []state.JournalEntry{{RunID: stopped.ID, Kind: planner.OpCreate, ExternalID: "crm-00001"}}); err != nil {
		t.Fatal(err)
	}
	rep := mustRun(t, rec, state.RunFull)

	entries, err := store.Journal(t.Context(), rep.RunID)
	if err != nil {
		t.Fatal(err)
	}
	kept := map[planner.OpKind]string{}
	for _, e := range entries {
		if e.Kind == planner.OpMerge || e.Kind == planner.OpDelete {
			kept[e.Kind] = string(e.Contacts)
		}
	}
	if !strings.Contains(kept[planner.OpMerge], dup.ID) || !strings.Contains(kept[planner.OpMerge], `"Twin"`) {
		t.Errorf("the merge journaled %q, want the full contacts, %s among them", kept[planner.OpMerge], dup.ID)
	}
	if !strings.Contains(kept[planner.OpDelete], orphan.ID) || !strings.Contains(kept[planner.OpDelete], `"Orphan"`) {
		t.Errorf("the delete journaled %q, want the full contact %s", kept[planner.OpDelete], orphan.ID)
	}
	old, err := store.Journal(t.Context(), stopped.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(old) != 1 || old[0].Status != state.StatusUnknown {
		t.Errorf("the stopped run's journal is %+v, want its pending entry closed as unknown", old)
	}
}

// A call that fails and then succeeds on a retry is done: through a storm
// of 5xx, 429 and connections dropped after the write, the first backfill
// succeeds and the watermark is set.
func TestRetriedCallsCountAsDone(t *testing.T) {
	rec, _, store := newChaosReconciler(t, sinchtest.Faults{
		// Rates at which a call fails all its 8 attempts about once in 200,000.
		ErrorRate: 0.12, TooManyRequestsRate: 0.05, DropAfterRate: 0.05, RetryAfter: -1, Seed: 11,
	})
	if err := crm.UpsertRecords(t.Context(), store.SQL(), "crm_contacts", chaosRows(300, "Person")); err != nil {
		t.Fatal(err)
	}
	rep, err := rec.Backfill(t.Context(), false)
	if err != nil || rep.Outcome != state.OutcomeSucceeded || rep.Failed != 0 {
		t.Fatalf("backfill through the storm: outcome %s, %d failed, err %v, errors %v", rep.Outcome, rep.Failed, err, rep.Errors)
	}
	if _, ok, err := store.Watermark(t.Context(), "chaos"); err != nil || !ok {
		t.Errorf("no watermark after a successful run (%v)", err)
	}
}

// unknownCreates answers every create as a create whose answer was lost and
// whose follow-up look-up Sinch refused with a 400.
type unknownCreates struct{ contactsync.SinchAPI }

func (unknownCreates) CreateContact(context.Context, sinch.Contact) (*sinch.Contact, error) {
	return nil, fmt.Errorf("%w: %w", sinch.ErrOutcomeUnknown, &sinch.APIError{HTTPStatus: 400, Status: "INVALID_ARGUMENT", Message: "bad filter"})
}

// An ambiguous create is journaled unknown, never as rejected by Sinch, and
// the run does not succeed, so that the next run checks.
func TestAmbiguousCreateIsUnknown(t *testing.T) {
	rec, _, store := newChaosReconciler(t, sinchtest.Faults{})
	rec.Sinch = unknownCreates{rec.Sinch}
	if err := crm.UpsertRecords(t.Context(), store.SQL(), "crm_contacts", chaosRows(1, "Person")); err != nil {
		t.Fatal(err)
	}
	rep, _ := rec.Backfill(t.Context(), false)
	if rep.Outcome == state.OutcomeSucceeded || len(rep.Rejected) != 0 {
		t.Errorf("outcome %s with %d rejected, want a failed run and no reject", rep.Outcome, len(rep.Rejected))
	}
	entries, err := store.Journal(t.Context(), rep.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Status != state.StatusUnknown {
		t.Errorf("journal %+v, want one create journaled unknown", entries)
	}
}

// refusedKey answers every create as Sinch does a key that lost access,
// counting the calls.
type refusedKey struct {
	contactsync.SinchAPI
	creates *atomic.Int32
}

func (k refusedKey) CreateContact(context.Context, sinch.Contact) (*sinch.Contact, error) {
	k.creates.Add(1)
	api := &sinch.APIError{HTTPStatus: 403, Status: "PERMISSION_DENIED", Message: "no"}
	return nil, &sinch.AccessError{ProjectID: "chaos", KeyID: "k", Auth: "oauth2", API: api, Err: api}
}

// A refused key stops the run at the first refusal instead of failing every
// remaining operation one call at a time; what was not sent is journaled as
// skipped, not left pending.
func TestRefusedKeyStopsTheRun(t *testing.T) {
	rec, _, store := newChaosReconciler(t, sinchtest.Faults{})
	rec.Concurrency = 1
	var creates atomic.Int32
	rec.Sinch = refusedKey{SinchAPI: rec.Sinch, creates: &creates}
	if err := crm.UpsertRecords(t.Context(), store.SQL(), "crm_contacts", chaosRows(50, "Person")); err != nil {
		t.Fatal(err)
	}
	rep, err := rec.Backfill(t.Context(), false)
	if !sinch.IsAccessDenied(err) || rep.Outcome != state.OutcomeFailed {
		t.Errorf("outcome %s, err %v; want a failed run naming the refused key", rep.Outcome, err)
	}
	if n := creates.Load(); n != 1 {
		t.Errorf("%d creates sent, want the run to stop at the first refusal", n)
	}
	entries, err := store.Journal(t.Context(), rep.RunID)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Status == state.StatusPending {
			t.Fatalf("journal entry %+v left pending", e)
		}
	}
}

// crm-6's contact is set by hand to crm-2's external_id, and crm-2's own
// contact is deleted; crm-2 then changes. The incremental run gives the
// contact back to crm-6 and creates one for crm-2.
func TestIncrementalGivesAMovedContactBack(t *testing.T) {
	rec, emu, store := newChaosReconciler(t, sinchtest.Faults{})
	if err := crm.UpsertRecords(t.Context(), store.SQL(), "crm_contacts", chaosRows(8, "Person")); err != nil {
		t.Fatal(err)
	}
	mustRun(t, rec, state.RunFull)
	before := byExternalID(emu)
	c6, c2 := before["crm-00006"][0], before["crm-00002"][0]
	if _, err := rec.Sinch.UpdateContact(t.Context(), c6.ID, sinch.Contact{ExternalID: "crm-00002"}, []string{sinch.FieldExternalID}); err != nil {
		t.Fatal(err)
	}
	if err := rec.Sinch.DeleteContact(t.Context(), c2.ID); err != nil {
		t.Fatal(err)
	}
	execSQL(t, store, `UPDATE crm_contacts SET display_name = 'Changed', updated_at = now() WHERE external_id = 'crm-00002'`)
	emu.ResetCalls()
	mustRun(t, rec, state.RunIncremental)
	after := byExternalID(emu)
	if cs := after["crm-00006"]; len(cs) != 1 || cs[0].ID != c6.ID {
		t.Errorf("crm-00006 has %v, want its own contact %s back", cs, c6.ID)
	}
	if cs := after["crm-00002"]; len(cs) != 1 || cs[0].ID == c6.ID || cs[0].DisplayName != "Changed" {
		t.Errorf("crm-00002 has %v, want a new contact of its own", cs)
	}
	if n := emu.Calls(sinchtest.OpMerge) + emu.Calls(sinchtest.OpDelete); n != 0 {
		t.Errorf("%v", emu.CallCounts())
	}
}
