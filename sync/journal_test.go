package sync_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/sinch/sinchtest"
	"github.com/syncd/syncd/state"
	contactsync "github.com/syncd/syncd/sync"
)

// marksFail is a journal whose marks fail the first failures times (all of
// them when failures is negative), as when the database connection is cut
// in the middle of a run.
type marksFail struct {
	contactsync.Journal
	failures int64
	calls    atomic.Int64
}

func (s *marksFail) JournalMarks(ctx context.Context, marks []state.JournalMark) error {
	if n := s.calls.Add(1); s.failures < 0 || n <= s.failures {
		return errors.New("connection reset by peer")
	}
	return s.Journal.JournalMarks(ctx, marks)
}

// Sinch's answers that cannot be recorded at once are recorded on a retry;
// answers that cannot be recorded at all make the run fail rather than end
// succeeded, and the next run closes what they left pending as unknown,
// finds in Sinch what landed and sends nothing twice.
func TestJournalTellsTheTruthWhenItCannotRecord(t *testing.T) {
	for _, tc := range []struct {
		name     string
		failures int64
	}{
		{"for a moment", 2},
		{"for good", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, emu, store := newChaosReconciler(t, sinchtest.Faults{})
			if err := crm.UpsertRecords(t.Context(), store.SQL(), "crm_contacts", chaosRows(9, "Person")); err != nil {
				t.Fatal(err)
			}
			rec.Journal = &marksFail{Journal: store, failures: tc.failures}
			rep, err := rec.Run(t.Context(), state.RunFull, false)
			entries, jerr := store.Journal(t.Context(), rep.RunID)
			if jerr != nil {
				t.Fatal(jerr)
			}
			pending := 0
			for _, e := range entries {
				if e.Status == state.StatusPending {
					pending++
				}
			}
			if tc.failures >= 0 {
				if err != nil || rep.Outcome != state.OutcomeSucceeded || pending != 0 {
					t.Fatalf("outcome %s (%v), %d entries pending, want succeeded with every answer recorded", rep.Outcome, err, pending)
				}
				return
			}
			if err == nil || rep.Outcome != state.OutcomeFailed || pending != 9 {
				t.Fatalf("outcome %s (%v), %d entries pending: want a failed run that says its 9 answers are not recorded", rep.Outcome, err, pending)
			}
			rec.Journal = store
			emu.ResetCalls()
			mustRun(t, rec, state.RunFull)
			if n := writes(emu); n != 0 {
				t.Errorf("the next run wrote %v, want nothing: every create had landed", emu.CallCounts())
			}
			entries, err = store.Journal(t.Context(), rep.RunID)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if e.Status != state.StatusUnknown {
					t.Errorf("entry %d of the failed run is %s, want unknown", e.ID, e.Status)
				}
			}
			if n := len(emu.Contacts()); n != 9 {
				t.Errorf("the emulator holds %d contacts, want 9", n)
			}
		})
	}
}
