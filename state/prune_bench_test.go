package state_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/state"
	"github.com/syncd/syncd/state/statetest"
)

// BenchmarkPruneWhileRunning prunes a million journal entries of old runs
// (ten nightly runs of 100k) while a run goes on beside it, appending and
// marking its entries in batches of 1000 as a full run does. It reports how
// long the prune takes and what the run's batches cost before and during
// it. Run it once: go test -run '^$' -bench PruneWhileRunning -benchtime 1x ./state/
func BenchmarkPruneWhileRunning(b *testing.B) {
	const (
		oldRuns   = 10
		perRun    = 100_000
		batch     = 1000
		baselineN = 50
	)
	for range b.N {
		b.StopTimer()
		s := statetest.NewStore(b)
		ctx := ctxFor(b)
		mustExec(b, s, `INSERT INTO syncd.runs (project_id, kind, started_at, finished_at, outcome)
			SELECT 'p', 'full', now() - (40 + g) * interval '1 day', now() - (40 + g) * interval '1 day' + interval '1 hour', 'succeeded'
			FROM generate_series(1, ?) g`, oldRuns)
		mustExec(b, s, `INSERT INTO syncd.journal (run_id, kind, external_id, contact_id, update_mask, reason, status, http_status, created_at, finished_at)
			SELECT r.id, 'patch', 'crm-' || lpad(g::text, 7, '0'), '01CONTACT' || g, '{display_name}',
				'drift: the contact differs from the CRM record: display_name', 'done', 200, r.started_at, r.started_at
			FROM syncd.runs r, generate_series(1, ?) g`, perRun)
		mustExec(b, s, `VACUUM ANALYZE syncd.journal`)
		mustExec(b, s, `VACUUM ANALYZE syncd.runs`)
		current, err := s.StartRun(ctx, "p", "full")
		if err != nil {
			b.Fatal(err)
		}

		// step is one batch of the run going on: its entries appended, then
		// Sinch's answers marked.
		step := func() time.Duration {
			start := time.Now()
			entries := make([]state.JournalEntry, batch)
			for i := range entries {
				entries[i] = state.JournalEntry{RunID: current.ID, Kind: planner.OpPatch, ExternalID: fmt.Sprintf("crm-%07d", i),
					ContactID: "01NEW", UpdateMask: []string{"display_name"}, Reason: "drift"}
			}
			if err := s.JournalAppend(ctx, entries); err != nil {
				b.Fatal(err)
			}
			marks := make([]state.JournalMark, batch)
			for i, e := range entries {
				marks[i] = state.JournalMark{ID: e.ID, Status: state.StatusDone, HTTPStatus: 200}
			}
			if err := s.JournalMarks(ctx, marks); err != nil {
				b.Fatal(err)
			}
			return time.Since(start)
		}
		var before []time.Duration
		for range baselineN {
			before = append(before, step())
		}

		b.StartTimer()
		type result struct {
			st  state.PruneStats
			err error
			d   time.Duration
		}
		done := make(chan result, 1)
		pruneCtx, cancel := context.WithCancel(ctx)
		go func() {
			start := time.Now()
			st, err := s.Prune(pruneCtx, "p", time.Now().Add(-30*24*time.Hour), state.DefaultPruneBatch)
			done <- result{st, err, time.Since(start)}
		}()
		var during []time.Duration
		var res result
	loop:
		for {
			during = append(during, step())
			select {
			case res = <-done:
				break loop
			default:
			}
		}
		b.StopTimer()
		cancel()
		if res.err != nil {
			b.Fatal(res.err)
		}
		if res.st.JournalEntries != oldRuns*perRun || res.st.Runs != oldRuns {
			b.Fatalf("pruned %+v, want %d entries and %d runs", res.st, oldRuns*perRun, oldRuns)
		}
		b.ReportMetric(res.d.Seconds(), "prune-s")
		b.ReportMetric(float64(res.st.JournalEntries)/res.d.Seconds(), "entries/s")
		b.ReportMetric(float64(res.st.Batches), "batches")
		b.ReportMetric(float64(len(during)), "run-batches-during")
		b.ReportMetric(ms(quantile(before, 0.5)), "run-batch-p50-before-ms")
		b.ReportMetric(ms(quantile(during, 0.5)), "run-batch-p50-during-ms")
		b.ReportMetric(ms(quantile(before, 0.99)), "run-batch-p99-before-ms")
		b.ReportMetric(ms(quantile(during, 0.99)), "run-batch-p99-during-ms")
		b.ReportMetric(ms(slices.Max(during)), "run-batch-max-during-ms")
	}
}

func quantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
