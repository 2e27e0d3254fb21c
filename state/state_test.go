package state_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/state"
	"github.com/syncd/syncd/state/statetest"
)

func TestLinks(t *testing.T) {
	t.Parallel()
	s := statetest.NewStore(t)
	ctx := ctxFor(t)
	at := time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC)

	steps := []struct {
		name   string
		apply  func() error
		want   map[string]string // external_id -> contact_id in project p1
		wantP2 int
	}{
		{"save", func() error {
			return s.SaveLinks(ctx, "p1", []planner.Link{
				{ExternalID: "a", ContactID: "A1", ContentHash: "h1", SyncedAt: at},
				{ExternalID: "b", ContactID: "B1", ContentHash: "h2"},
			})
		}, map[string]string{"a": "A1", "b": "B1"}, 0},
		{"other project is separate", func() error {
			return s.SaveLinks(ctx, "p2", []planner.Link{{ExternalID: "a", ContactID: "Z"}})
		}, map[string]string{"a": "A1", "b": "B1"}, 1},
		{"upsert replaces, repeats keep the last", func() error {
			return s.SaveLinks(ctx, "p1", []planner.Link{
				{ExternalID: "a", ContactID: "A2"}, {ExternalID: "c", ContactID: "C1"}, {ExternalID: "a", ContactID: "A3"},
			})
		}, map[string]string{"a": "A3", "b": "B1", "c": "C1"}, 1},
		{"delete, unknown ids ignored", func() error {
			return s.DeleteLinks(ctx, "p1", []string{"b", "nope"})
		}, map[string]string{"a": "A3", "c": "C1"}, 1},
		{"empty calls are no-ops", func() error {
			if err := s.SaveLinks(ctx, "p1", nil); err != nil {
				return err
			}
			return s.DeleteLinks(ctx, "p1", nil)
		}, map[string]string{"a": "A3", "c": "C1"}, 1},
	}
	for _, st := range steps {
		if err := st.apply(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		links, err := s.Links(ctx, "p1")
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got := map[string]string{}
		for id, l := range links {
			if id != l.ExternalID {
				t.Errorf("%s: key %q holds link for %q", st.name, id, l.ExternalID)
			}
			if l.SyncedAt.IsZero() {
				t.Errorf("%s: %s has no synced_at", st.name, id)
			}
			got[id] = l.ContactID
		}
		if fmt.Sprint(got) != fmt.Sprint(st.want) {
			t.Errorf("%s: links = %v, want %v", st.name, got, st.want)
		}
		if p2, _ := s.Links(ctx, "p2"); len(p2) != st.wantP2 {
			t.Errorf("%s: p2 has %d links, want %d", st.name, len(p2), st.wantP2)
		}
	}
}

func TestSaveLinksInBulk(t *testing.T) {
	t.Parallel()
	s := statetest.NewStore(t)
	ctx := ctxFor(t)
	const n = 12345 // several statements' worth
	links := make([]planner.Link, n)
	for i := range links {
		links[i] = planner.Link{ExternalID: fmt.Sprintf("e%05d", i), ContactID: fmt.Sprintf("C%d", i), ContentHash: "h"}
	}
	if err := s.SaveLinks(ctx, "p", links); err != nil {
		t.Fatal(err)
	}
	got, err := s.Links(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n || got["e12344"].ContactID != "C12344" {
		t.Fatalf("got %d links (e12344 = %+v), want %d", len(got), got["e12344"], n)
	}
}

func TestRunsAndJournal(t *testing.T) {
	t.Parallel()
	s := statetest.NewStore(t)
	ctx := ctxFor(t)

	old, err := s.StartRun(ctx, "p", "full")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.FinishRun(ctx, old.ID, "success", map[string]int{"create": 2}, ""); err != nil {
		t.Fatal(err)
	}
	run, err := s.StartRun(ctx, "p", "incremental")
	if err != nil {
		t.Fatal(err)
	}
	if run.ID == 0 || run.Outcome != state.OutcomeRunning || run.PID == 0 || run.StartedAt.IsZero() {
		t.Fatalf("StartRun = %+v", run)
	}
	other, err := s.StartRun(ctx, "other", "full")
	if err != nil {
		t.Fatal(err)
	}

	entries := []state.JournalEntry{
		{RunID: run.ID, Kind: planner.OpCreate, ExternalID: "a", Reason: "new record",
			Changes: []byte(`[{"field":"display_name","old":"","new":"Ann"}]`)},
		{RunID: run.ID, Kind: planner.OpPatch, ExternalID: "b", ContactID: "B", UpdateMask: []string{"display_name", "language"},
			Changes: []byte(`[{"field":"display_name","old":"Bo","new":"Bob"},{"field":"language","old":"","new":"sv"}]`)},
		{RunID: run.ID, Kind: planner.OpPatch, ExternalID: "c", ContactID: "C", UpdateMask: []string{}},
		{RunID: run.ID, Kind: planner.OpMerge, ExternalID: "d", ContactID: "D", SourceContactID: "D2"},
		{RunID: run.ID, Kind: state.KindReject, ExternalID: "e", Reason: "invalid phone", Status: state.StatusRejected},
		{RunID: other.ID, Kind: planner.OpDelete, ContactID: "X"},
	}
	if err := s.JournalAppend(ctx, entries); err != nil {
		t.Fatal(err)
	}
	for i, e := range entries {
		if e.ID == 0 || e.CreatedAt.IsZero() || e.Status == "" {
			t.Fatalf("entry %d not filled in: %+v", i, e)
		}
		if i > 0 && e.ID <= entries[i-1].ID {
			t.Fatalf("ids not in append order: %d after %d", e.ID, entries[i-1].ID)
		}
	}

	marks := []struct {
		id        int64
		status    state.Status
		http      int
		errMsg    string
		contactID string
	}{
		{entries[0].ID, state.StatusDone, 200, "", "A-new"},
		{entries[1].ID, state.StatusFailed, 400, "INVALID_ARGUMENT", ""},
	}
	for _, m := range marks {
		if err := s.JournalMark(ctx, m.id, m.status, m.http, m.errMsg, m.contactID); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.JournalMark(ctx, -1, state.StatusDone, 200, "", ""); err == nil {
		t.Error("marking a missing entry succeeded")
	}

	got, err := s.Journal(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 {
		t.Fatalf("journal has %d entries, want 5", len(got))
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"create marked done with its new contact", got[0].Status == state.StatusDone && got[0].HTTPStatus == 200 &&
			got[0].ContactID == "A-new" && got[0].FinishedAt != nil && got[0].Reason == "new record"},
		{"failed patch keeps mask, status and error", got[1].Status == state.StatusFailed && got[1].HTTPStatus == 400 &&
			got[1].Error == "INVALID_ARGUMENT" && slices.Equal(got[1].UpdateMask, []string{"display_name", "language"}) &&
			got[1].ContactID == "B"},
		{"empty mask is not NULL", got[2].UpdateMask != nil && len(got[2].UpdateMask) == 0},
		{"merge keeps both contacts, NULL mask", got[3].SourceContactID == "D2" && got[3].ContactID == "D" && got[3].UpdateMask == nil},
		{"create and patch keep their values", jsonEqual(got[0].Changes, entries[0].Changes) && jsonEqual(got[1].Changes, entries[1].Changes)},
		{"no values is NULL", len(got[2].Changes) == 0 && len(got[3].Changes) == 0 && len(got[4].Changes) == 0},
		{"pending has no finish", got[3].Status == state.StatusPending && got[3].FinishedAt == nil && got[3].HTTPStatus == 0},
		{"reject recorded as rejected", got[4].Kind == state.KindReject && got[4].Status == state.StatusRejected},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: %+v", c.name, got)
		}
	}

	if tl, err := s.Timeline(ctx, "p", "b", ""); err != nil || len(tl) != 1 || !jsonEqual(tl[0].Changes, entries[1].Changes) {
		t.Errorf("Timeline(b) = %+v, %v; want the patch with its values", tl, err)
	}

	interrupted, err := s.InterruptedRuns(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	if len(interrupted) != 1 || interrupted[0].ID != run.ID {
		t.Errorf("InterruptedRuns = %+v, want run %d", interrupted, run.ID)
	}

	if err := s.FinishRun(ctx, run.ID, "partial", map[string]int{"create": 1, "failed": 1}, "1 call failed"); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishRun(ctx, run.ID, "success", nil, ""); err == nil {
		t.Error("finishing a run twice succeeded")
	}
	if err := s.FinishRun(ctx, other.ID, state.OutcomeRunning, nil, ""); err == nil {
		t.Error(`finishing a run as "running" succeeded`)
	}
	if n, err := s.CloseJournal(ctx, run.ID); err != nil || n != 2 {
		t.Errorf("CloseJournal closed %d entries (%v), want the 2 pending", n, err)
	}
	if closed, _ := s.Journal(ctx, run.ID); closed[2].Status != state.StatusUnknown || closed[2].FinishedAt == nil || closed[3].Status != state.StatusUnknown {
		t.Errorf("pending entries after CloseJournal: %+v", closed[2:4])
	}
	if rejects, err := s.Rejects(ctx, run.ID, 5); err != nil || len(rejects) != 1 || rejects[0].ExternalID != "e" ||
		rejects[0].Reason != "invalid phone" {
		t.Errorf("Rejects = %+v, %v; want entry e", rejects, err)
	}

	last, err := s.LastRuns(ctx, "p", 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(last) != 2 || last[0].ID != run.ID || last[1].ID != old.ID {
		t.Fatalf("LastRuns = %+v, want runs %d then %d", last, run.ID, old.ID)
	}
	r := last[0]
	if r.Outcome != "partial" || r.Error != "1 call failed" || r.Counts["failed"] != 1 || r.FinishedAt == nil ||
		r.Kind != "incremental" || r.Host == "" || r.PID != run.PID {
		t.Errorf("finished run = %+v", r)
	}
	if last[1].Error != "" || last[1].Counts["create"] != 2 {
		t.Errorf("old run = %+v", last[1])
	}
	if one, _ := s.LastRuns(ctx, "p", 1); len(one) != 1 {
		t.Errorf("LastRuns(1) returned %d runs", len(one))
	}
}

func TestJournalAppendIsAllOrNothing(t *testing.T) {
	t.Parallel()
	s := statetest.NewStore(t)
	ctx := ctxFor(t)
	run, err := s.StartRun(ctx, "p", "full")
	if err != nil {
		t.Fatal(err)
	}
	entries := make([]state.JournalEntry, 2500) // spans several statements
	for i := range entries {
		entries[i] = state.JournalEntry{RunID: run.ID, Kind: planner.OpCreate, ExternalID: fmt.Sprint(i)}
	}
	entries[2400].Kind = "upsert" // not a kind the journal knows
	err = s.JournalAppend(ctx, entries)
	if err == nil || !strings.Contains(err.Error(), "journal_kind_check") {
		t.Fatalf("err = %v, want the kind constraint", err)
	}
	if entries[0].ID != 0 {
		t.Errorf("a failed append filled in ids")
	}
	if got, _ := s.Journal(ctx, run.ID); len(got) != 0 {
		t.Errorf("a failed append left %d entries", len(got))
	}

	entries[2400].Kind = planner.OpCreate
	if err := s.JournalAppend(ctx, entries); err != nil {
		t.Fatal(err)
	}
	got, err := s.Journal(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(entries) {
		t.Fatalf("journal has %d entries, want %d", len(got), len(entries))
	}
	for i := range got {
		if got[i].ID != entries[i].ID || got[i].ExternalID != fmt.Sprint(i) {
			t.Fatalf("entry %d: stored %+v, appended %+v", i, got[i], entries[i])
		}
	}
}

func TestWatermark(t *testing.T) {
	t.Parallel()
	s := statetest.NewStore(t)
	ctx := ctxFor(t)
	if _, ok, err := s.Watermark(ctx, "p"); err != nil || ok {
		t.Fatalf("fresh watermark: ok=%v err=%v, want none", ok, err)
	}
	for _, at := range []time.Time{
		time.Date(2025, 1, 2, 3, 4, 5, 678901000, time.UTC),
		time.Date(2024, 12, 31, 0, 0, 0, 0, time.FixedZone("CET", 3600)), // may move back: a repair resets it
	} {
		if err := s.SetWatermark(ctx, "p", at); err != nil {
			t.Fatal(err)
		}
		got, ok, err := s.Watermark(ctx, "p")
		if err != nil || !ok || !got.Equal(at) {
			t.Fatalf("Watermark = %v %v %v, want %v", got, ok, err, at)
		}
	}
	if _, ok, _ := s.Watermark(ctx, "q"); ok {
		t.Error("watermark leaked across projects")
	}
}

// jsonEqual compares JSON documents by value: jsonb reorders and respaces.
func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
