package state_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/state"
	"github.com/syncd/syncd/state/statetest"
)

// The journal answers for what a project's done writes left: a write's
// answer hash is found, one that failed or belongs to another project is
// not, and so for the contacts its done deletes removed.
func TestAnswersAndDeletes(t *testing.T) {
	s := statetest.NewStore(t)
	ctx := ctxFor(t)
	run, err := s.StartRun(ctx, "p", state.RunEvents)
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.StartRun(ctx, "q", state.RunEvents)
	if err != nil {
		t.Fatal(err)
	}
	entries := []state.JournalEntry{
		{RunID: run.ID, Kind: planner.OpCreate, ExternalID: "a"},
		{RunID: run.ID, Kind: planner.OpMerge, ExternalID: "b", ContactID: "B", SourceContactID: "B2"},
		{RunID: run.ID, Kind: planner.OpPatch, ExternalID: "c", ContactID: "C"},
		{RunID: run.ID, Kind: planner.OpDelete, ExternalID: "d", ContactID: "D"},
		{RunID: run.ID, Kind: planner.OpDelete, ExternalID: "e", ContactID: "E"},
		{RunID: other.ID, Kind: planner.OpPatch, ExternalID: "f", ContactID: "F"},
		{RunID: other.ID, Kind: planner.OpDelete, ExternalID: "g", ContactID: "G"},
	}
	if err := s.JournalAppend(ctx, entries); err != nil {
		t.Fatal(err)
	}
	if err := s.JournalMarks(ctx, []state.JournalMark{
		{ID: entries[0].ID, Status: state.StatusDone, ContactID: "A", AnswerHash: "h-a"},
		{ID: entries[1].ID, Status: state.StatusDone, AnswerHash: "h-b"},
		{ID: entries[2].ID, Status: state.StatusFailed, HTTPStatus: 503, AnswerHash: "h-c"},
		{ID: entries[3].ID, Status: state.StatusDone},
		{ID: entries[4].ID, Status: state.StatusFailed},
		{ID: entries[5].ID, Status: state.StatusDone, AnswerHash: "h-f"},
		{ID: entries[6].ID, Status: state.StatusDone},
	}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Answers(ctx, "p", []string{"h-a", "h-b", "h-c", "h-f", "h-none"})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(x, y state.Answer) int { return strings.Compare(x.Hash, y.Hash) })
	want := []state.Answer{
		{Hash: "h-a", Kind: planner.OpCreate, ContactID: "A"},
		{Hash: "h-b", Kind: planner.OpMerge, ContactID: "B", SourceContactID: "B2"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("answers %+v, want %+v", got, want)
	}
	deleted, err := s.WrittenContacts(ctx, "p", []string{"D", "E", "G", "X"}, planner.OpDelete)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(deleted, []string{"D"}) {
		t.Errorf("deleted %v, want [D]", deleted)
	}
}
