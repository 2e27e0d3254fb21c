package state_test

import (
	"testing"

	"github.com/syncd/syncd/state"
	"github.com/syncd/syncd/state/statetest"
)

// TestJournalMarks checks that a batch of marks stores what one JournalMark
// per entry would, and names the entries that do not exist.
func TestJournalMarks(t *testing.T) {
	s := statetest.NewStore(t)
	ctx := ctxFor(t)
	run, err := s.StartRun(ctx, "p", "full")
	if err != nil {
		t.Fatal(err)
	}
	entries := []state.JournalEntry{
		{RunID: run.ID, Kind: state.JournalCreate, ExternalID: "a"},
		{RunID: run.ID, Kind: state.JournalPatch, ExternalID: "b", ContactID: "B"},
		{RunID: run.ID, Kind: state.JournalDelete, ExternalID: "c", ContactID: "C"},
	}
	if err := s.JournalAppend(ctx, entries); err != nil {
		t.Fatal(err)
	}
	err = s.JournalMarks(ctx, []state.JournalMark{
		{ID: entries[0].ID, Status: state.JournalFailed, HTTPStatus: 503, Error: "first answer"},
		{ID: entries[1].ID, Status: state.JournalFailed, HTTPStatus: 400, Error: "INVALID_ARGUMENT"},
		{ID: entries[0].ID, Status: state.JournalDone, HTTPStatus: 200, ContactID: "A-new"}, // the last word wins
		{ID: -1, Status: state.JournalDone},
	})
	if err == nil {
		t.Error("marking a missing entry succeeded")
	}
	got, err := s.Journal(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if e := got[0]; e.Status != state.JournalDone || e.HTTPStatus != 200 || e.Error != "" || e.ContactID != "A-new" || e.FinishedAt == nil {
		t.Errorf("create: %+v", e)
	}
	if e := got[1]; e.Status != state.JournalFailed || e.HTTPStatus != 400 || e.Error != "INVALID_ARGUMENT" || e.ContactID != "B" || e.FinishedAt == nil {
		t.Errorf("patch: %+v", e)
	}
	if e := got[2]; e.Status != state.JournalPending || e.FinishedAt != nil {
		t.Errorf("unmarked delete: %+v", e)
	}
}
