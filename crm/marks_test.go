package crm_test

import (
	"testing"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/crm/crmtest"
)

// TestJournalMarks checks that a batch of marks stores what one JournalMark
// per entry would, and names the entries that do not exist.
func TestJournalMarks(t *testing.T) {
	s := crmtest.NewStore(t)
	ctx := ctxFor(t)
	run, err := s.StartRun(ctx, "p", "full")
	if err != nil {
		t.Fatal(err)
	}
	entries := []crm.JournalEntry{
		{RunID: run.ID, Kind: crm.JournalCreate, ExternalID: "a"},
		{RunID: run.ID, Kind: crm.JournalPatch, ExternalID: "b", ContactID: "B"},
		{RunID: run.ID, Kind: crm.JournalDelete, ExternalID: "c", ContactID: "C"},
	}
	if err := s.JournalAppend(ctx, entries); err != nil {
		t.Fatal(err)
	}
	err = s.JournalMarks(ctx, []crm.JournalMark{
		{ID: entries[0].ID, Status: crm.JournalFailed, HTTPStatus: 503, Error: "first answer"},
		{ID: entries[1].ID, Status: crm.JournalFailed, HTTPStatus: 400, Error: "INVALID_ARGUMENT"},
		{ID: entries[0].ID, Status: crm.JournalDone, HTTPStatus: 200, ContactID: "A-new"}, // the last word wins
		{ID: -1, Status: crm.JournalDone},
	})
	if err == nil {
		t.Error("marking a missing entry succeeded")
	}
	got, err := s.Journal(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if e := got[0]; e.Status != crm.JournalDone || e.HTTPStatus != 200 || e.Error != "" || e.ContactID != "A-new" || e.FinishedAt == nil {
		t.Errorf("create: %+v", e)
	}
	if e := got[1]; e.Status != crm.JournalFailed || e.HTTPStatus != 400 || e.Error != "INVALID_ARGUMENT" || e.ContactID != "B" || e.FinishedAt == nil {
		t.Errorf("patch: %+v", e)
	}
	if e := got[2]; e.Status != crm.JournalPending || e.FinishedAt != nil {
		t.Errorf("unmarked delete: %+v", e)
	}
}
