package state_test

import (
	"testing"

	"github.com/syncd/syncd/planner"
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
		{RunID: run.ID, Kind: planner.OpCreate, ExternalID: "a"},
		{RunID: run.ID, Kind: planner.OpPatch, ExternalID: "b", ContactID: "B"},
		{RunID: run.ID, Kind: planner.OpDelete, ExternalID: "c", ContactID: "C"},
	}
	if err := s.JournalAppend(ctx, entries); err != nil {
		t.Fatal(err)
	}
	err = s.JournalMarks(ctx, []state.JournalMark{
		{ID: entries[0].ID, Status: state.StatusFailed, HTTPStatus: 503, Error: "first answer"},
		{ID: entries[1].ID, Status: state.StatusFailed, HTTPStatus: 400, Error: "INVALID_ARGUMENT"},
		{ID: entries[0].ID, Status: state.StatusDone, HTTPStatus: 200, ContactID: "A-new"}, // the last word wins
		{ID: -1, Status: state.StatusDone},
	})
	if err == nil {
		t.Error("marking a missing entry succeeded")
	}
	got, err := s.Journal(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if e := got[0]; e.Status != state.StatusDone || e.HTTPStatus != 200 || e.Error != "" || e.ContactID != "A-new" || e.FinishedAt == nil {
		t.Errorf("create: %+v", e)
	}
	if e := got[1]; e.Status != state.StatusFailed || e.HTTPStatus != 400 || e.Error != "INVALID_ARGUMENT" || e.ContactID != "B" || e.FinishedAt == nil {
		t.Errorf("patch: %+v", e)
	}
	if e := got[2]; e.Status != state.StatusPending || e.FinishedAt != nil {
		t.Errorf("unmarked delete: %+v", e)
	}
}
