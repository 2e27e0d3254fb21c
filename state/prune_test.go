package state_test

import (
	"testing"
	"time"

	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/state"
	"github.com/syncd/syncd/state/statetest"
)

func TestPrune(t *testing.T) {
	t.Parallel()
	s := statetest.NewStore(t)
	ctx := ctxFor(t)
	// age makes a run with n journal entries that started (and, unless
	// running, finished) that long ago.
	run := func(project string, age time.Duration, n int, finished bool) int64 {
		t.Helper()
		r, err := s.StartRun(ctx, project, "full")
		if err != nil {
			t.Fatal(err)
		}
		entries := make([]state.JournalEntry, n)
		for i := range entries {
			entries[i] = state.JournalEntry{RunID: r.ID, Kind: planner.OpCreate, ExternalID: "e", Status: state.StatusDone}
		}
		if err := s.JournalAppend(ctx, entries); err != nil {
			t.Fatal(err)
		}
		if finished {
			if err := s.FinishRun(ctx, r.ID, "succeeded", nil, ""); err != nil {
				t.Fatal(err)
			}
		}
		at := time.Now().Add(-age)
		mustExec(t, s, `UPDATE syncd.runs SET started_at = $2, finished_at = CASE WHEN finished_at IS NULL THEN NULL ELSE $2::timestamptz END WHERE id = $1`, r.ID, at)
		mustExec(t, s, `UPDATE syncd.journal SET created_at = $2 WHERE run_id = $1`, r.ID, at)
		return r.ID
	}
	old1 := run("p", 40*24*time.Hour, 7, true)
	old2 := run("p", 31*24*time.Hour, 0, true)
	oldRunning := run("p", 40*24*time.Hour, 2, false)
	recent := run("p", 24*time.Hour, 3, true)
	otherProject := run("q", 40*24*time.Hour, 2, true)

	st, err := s.Prune(ctx, "p", time.Now().Add(-30*24*time.Hour), 3)
	if err != nil {
		t.Fatal(err)
	}
	if st.JournalEntries != 7 || st.Runs != 2 || st.Batches < 4 {
		t.Errorf("pruned %+v, want 7 entries and 2 runs in batches of 3", st)
	}
	left := map[int64]int{}
	var ids []int64
	if err := s.DB().WithContext(ctx).Raw(`SELECT id FROM syncd.runs ORDER BY id`).Scan(&ids).Error; err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		var n int
		if err := s.DB().WithContext(ctx).Raw(`SELECT count(*) FROM syncd.journal WHERE run_id = ?`, id).Scan(&n).Error; err != nil {
			t.Fatal(err)
		}
		left[id] = n
	}
	want := map[int64]int{oldRunning: 2, recent: 3, otherProject: 2}
	if len(left) != len(want) {
		t.Errorf("runs left %v, want %v (old %d and %d pruned)", left, want, old1, old2)
	}
	for id, n := range want {
		if got, ok := left[id]; !ok || got != n {
			t.Errorf("run %d: %d entries left (present %v), want %d", id, got, ok, n)
		}
	}

	// Nothing more to do: one batch per step, nothing deleted.
	if st, err := s.Prune(ctx, "p", time.Now().Add(-30*24*time.Hour), 3); err != nil || st.JournalEntries+st.Runs != 0 {
		t.Errorf("second prune: %+v, %v", st, err)
	}
}
