package sync_test

import (
	"context"
	"fmt"
	"iter"
	"testing"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/sinch/sinchtest"
	"github.com/syncd/syncd/state"
	"github.com/syncd/syncd/state/statetest"
	contactsync "github.com/syncd/syncd/sync"
)

// duringRead is a CRM reader that runs do once its full read of the
// source has yielded after batches (0: once the read is over), as another
// writer of the CRM would in the middle of a run; read is closed once the
// read is over.
type duringRead struct {
	contactsync.CRM
	after int
	do    func()
	read  chan struct{}
}

func (s *duringRead) Records(ctx context.Context, source crm.Source, batchSize int) iter.Seq2[[]crm.Record, error] {
	return func(yield func([]crm.Record, error) bool) {
		defer close(s.read)
		n := 0
		for batch, err := range s.CRM.Records(ctx, source, batchSize) {
			if !yield(batch, err) {
				return
			}
			if n++; n == s.after {
				s.do()
			}
		}
		if s.after == 0 {
			s.do()
		}
	}
}

// duringList is a Sinch client that runs do once its full list has served
// after pages (0: at its end, once wait is closed), as a person in the
// Sinch dashboard would in the middle of a run.
type duringList struct {
	contactsync.SinchAPI
	after int
	wait  <-chan struct{}
	do    func()
}

func (s duringList) Pages(ctx context.Context, req sinch.ListContactsRequest) iter.Seq2[[]sinch.Contact, error] {
	if req.ExternalID != "" || req.Channel != "" {
		return s.SinchAPI.Pages(ctx, req)
	}
	return func(yield func([]sinch.Contact, error) bool) {
		n := 0
		for page, err := range s.SinchAPI.Pages(ctx, req) {
			if !yield(page, err) {
				return
			}
			if n++; n == s.after {
				s.do()
			}
		}
		if s.after == 0 {
			<-s.wait
			s.do()
		}
	}
}

// A rename committed while a full run reads the CRM (five rows from high
// keys to low ones, five the other way) is seen as what it is: the full
// run, which reads one moment of the CRM, neither deletes nor creates, and
// the next incremental run re-keys the ten contacts, which keep their ids.
func TestFullRunSeesARenameAsARename(t *testing.T) {
	rec, emu, store := newChaosReconciler(t, sinchtest.Faults{})
	rec.BatchSize = 50
	if err := crm.UpsertRecords(t.Context(), store.SQL(), "crm_contacts", chaosRows(300, "Person")); err != nil {
		t.Fatal(err)
	}
	mustRun(t, rec, state.RunFull)
	before := byExternalID(emu)
	renames := map[string]string{}
	for i := range 5 {
		renames[fmt.Sprintf("crm-%05d", 290+i)] = fmt.Sprintf("crm-0000%d-renamed", i) // high to low
		renames[fmt.Sprintf("crm-%05d", 10+i)] = fmt.Sprintf("crm-9999%d-renamed", i)  // low to high
	}
	rec.CRM = &duringRead{CRM: rec.CRM, after: 2, read: make(chan struct{}), do: func() {
		tx := store.DB().Begin()
		for old, to := range renames {
			if err := tx.Exec(`UPDATE crm_contacts SET external_id = ? WHERE external_id = ?`, to, old).Error; err != nil {
				t.Error(err)
			}
		}
		if err := tx.Commit().Error; err != nil {
			t.Error(err)
		}
	}}
	emu.ResetCalls()
	mustRun(t, rec, state.RunFull)
	if n := emu.Calls(sinchtest.OpCreate) + emu.Calls(sinchtest.OpDelete) + emu.Calls(sinchtest.OpMerge); n != 0 {
		t.Errorf("the full run during the renames cost %v", emu.CallCounts())
	}
	rec.CRM = rec.CRM.(*duringRead).CRM
	emu.ResetCalls()
	mustRun(t, rec, state.RunIncremental)
	if n, u := writes(emu), emu.Calls(sinchtest.OpUpdate); n != 10 || u != 10 {
		t.Errorf("the incremental run after them wrote %v, want ten patches", emu.CallCounts())
	}
	after := byExternalID(emu)
	for old, to := range renames {
		if cs := after[to]; len(cs) != 1 || cs[0].ID != before[old][0].ID {
			t.Errorf("%s (was %s) has %v, want its old contact %s", to, old, cs, before[old][0].ID)
		}
	}
	if n := len(emu.Contacts()); n != 300 {
		t.Errorf("the emulator holds %d contacts, want 300", n)
	}
}

// What a full run cannot undo rests on facts read just before it: a delete
// whose record came back, or whose contact a record changed since the
// read now holds (a rename), is skipped and left to the next run.
func TestFullRunChecksBeforeItDeletes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change string
	}{
		{"the record came back", `INSERT INTO crm_contacts (external_id, display_name, phone) VALUES ('crm-00003', 'Person 3', '+46730000003')`},
		{"renamed", `INSERT INTO crm_contacts (external_id, display_name, phone) VALUES ('crm-renamed', 'Person 3', '+46730000003')`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, emu, store := newChaosReconciler(t, sinchtest.Faults{})
			rec.Options.AllowMassDelete = true
			if err := crm.UpsertRecords(t.Context(), store.SQL(), "crm_contacts", chaosRows(20, "Person")); err != nil {
				t.Fatal(err)
			}
			mustRun(t, rec, state.RunFull)
			old := byExternalID(emu)["crm-00003"][0]
			execSQL(t, store, `DELETE FROM crm_contacts WHERE external_id = 'crm-00003'`)
			read := make(chan struct{})
			rec.CRM = &duringRead{CRM: rec.CRM, read: read, do: func() {}}
			rec.Sinch = duringList{SinchAPI: rec.Sinch, wait: read, do: func() { execSQL(t, store, tc.change) }}
			emu.ResetCalls()
			rep := mustRun(t, rec, state.RunFull)
			if n := emu.Calls(sinchtest.OpDelete); n != 0 || rep.Skipped != 1 {
				t.Errorf("the full run made %v and skipped %d, want the delete skipped", emu.CallCounts(), rep.Skipped)
			}
			rec.CRM, rec.Sinch = rec.CRM.(*duringRead).CRM, rec.Sinch.(duringList).SinchAPI
			emu.ResetCalls()
			mustRun(t, rec, state.RunIncremental)
			mustRun(t, rec, state.RunFull)
			if n := emu.Calls(sinchtest.OpDelete) + emu.Calls(sinchtest.OpCreate); n != 0 {
				t.Errorf("the runs after it made %v", emu.CallCounts())
			}
			got := byExternalID(emu)
			ext := "crm-00003"
			if tc.name == "renamed" {
				ext = "crm-renamed"
			}
			if cs := got[ext]; len(cs) != 1 || cs[0].ID != old.ID {
				t.Errorf("%s has %v, want its old contact %s", ext, cs, old.ID)
			}
		})
	}
}

// Sinch's page tokens are positions: a contact deleted on a page already
// listed shifts the rest, and the list skips a contact of another record.
// The full run reads that record's linked contact before it creates one,
// finds it, and creates nothing; the next run recreates the deleted one.
// No record ends with two contacts.
func TestFullRunReadsTheLinkBeforeItCreates(t *testing.T) {
	store := statetest.NewStore(t)
	emu, srv := sinchtest.Start(t, sinchtest.Options{ProjectID: "chaos", KeyID: "k", KeySecret: "a-realistic-secret", ShiftingPages: true})
	rec := chaosReconcilerOn(t, store, emu, srv.URL)
	if err := crm.UpsertRecords(t.Context(), store.SQL(), "crm_contacts", chaosRows(60, "Person")); err != nil {
		t.Fatal(err)
	}
	mustRun(t, rec, state.RunFull)
	first := emu.Contacts()[0]
	rec.Sinch = duringList{SinchAPI: rec.Sinch, after: 1, do: func() {
		if err := emu.DeleteAsPerson(first.ID); err != nil {
			t.Error(err)
		}
	}}
	emu.ResetCalls()
	rep := mustRun(t, rec, state.RunFull)
	if n := emu.Calls(sinchtest.OpCreate); n != 0 || rep.Skipped != 1 {
		t.Errorf("the full run made %v and skipped %d, want the create of the record whose contact the list missed skipped", emu.CallCounts(), rep.Skipped)
	}
	rec.Sinch = rec.Sinch.(duringList).SinchAPI
	emu.ResetCalls()
	mustRun(t, rec, state.RunFull)
	if n := emu.Calls(sinchtest.OpCreate); n != 1 {
		t.Errorf("the next run made %v, want one create for the contact deleted in Sinch", emu.CallCounts())
	}
	for ext, cs := range byExternalID(emu) {
		if len(cs) != 1 {
			t.Errorf("%s has %d contacts", ext, len(cs))
		}
	}
	if n := len(emu.Contacts()); n != 60 {
		t.Errorf("the emulator holds %d contacts, want 60", n)
	}
}

// The project is shared while a full run lists: a CRM edit made meanwhile
// reaches Sinch through an incremental run that goes on beside the full
// run, and the full run, which read the CRM before the edit, does not take
// it back.
func TestEditDuringAFullRunReachesSinchAndStays(t *testing.T) {
	rec, emu, store := newChaosReconciler(t, sinchtest.Faults{})
	rows := chaosRows(300, "Person")
	if err := crm.UpsertRecords(t.Context(), store.SQL(), "crm_contacts", rows); err != nil {
		t.Fatal(err)
	}
	mustRun(t, rec, state.RunFull)
	// crm-00290 is listed late, crm-00001 early: both edits reach Sinch
	// mid-run and stay.
	edit := func(ext string) {
		execSQL(t, store, `UPDATE crm_contacts SET display_name = 'Edited during the full run', updated_at = now() WHERE external_id = ?`, ext)
	}
	incremental := sameProcess(rec)
	rec.Sinch = duringList{SinchAPI: rec.Sinch, after: 3, do: func() {
		edit("crm-00290")
		edit("crm-00001")
		rep, err := incremental.Run(t.Context(), state.RunIncremental, false)
		if err != nil || rep.Outcome != state.OutcomeSucceeded || rep.Applied.Patch != 2 {
			t.Errorf("the incremental run during the full run: %s, %+v, %v", rep.Outcome, rep.Applied, err)
		}
		for _, ext := range []string{"crm-00290", "crm-00001"} {
			if cs := byExternalID(emu)[ext]; len(cs) != 1 || cs[0].DisplayName != "Edited during the full run" {
				t.Errorf("mid-run, %s is %v", ext, cs)
			}
		}
	}}
	mustRun(t, rec, state.RunFull)
	for _, ext := range []string{"crm-00290", "crm-00001"} {
		if cs := byExternalID(emu)[ext]; len(cs) != 1 || cs[0].DisplayName != "Edited during the full run" {
			t.Errorf("after the full run, %s is %v: it took the edit back", ext, cs)
		}
	}
	emu.ResetCalls()
	mustRun(t, incremental, state.RunFull)
	if n := writes(emu); n != 0 {
		t.Errorf("the next full run wrote %v", emu.CallCounts())
	}
}

// sameProcess is a reconciler of the same project, store and client as
// rec, as the daemon's partial runs share them with its full runs.
func sameProcess(rec *contactsync.Reconciler) *contactsync.Reconciler {
	return &contactsync.Reconciler{
		CRM: rec.CRM, Links: rec.Links, Identities: rec.Identities, Deferrals: rec.Deferrals, Journal: rec.Journal,
		Runs: rec.Runs, Watermarks: rec.Watermarks, Locks: rec.Locks, Sinch: rec.Sinch, Logger: rec.Logger,
		ProjectID: rec.ProjectID, Source: rec.Source, BatchSize: rec.BatchSize, Concurrency: rec.Concurrency, Options: rec.Options,
	}
}
