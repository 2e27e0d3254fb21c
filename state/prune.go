package state

import (
	"context"
	"fmt"
	"time"
)

// DefaultPruneBatch is how many rows one pruning statement deletes: small
// enough that each is a short transaction (tens of milliseconds) which a
// run's journal writes never wait behind, large enough that a million
// entries go in minutes.
const DefaultPruneBatch = 5000

// PruneStats counts what Prune deleted.
type PruneStats struct {
	JournalEntries int64
	Runs           int64
	Batches        int
}

// Prune deletes the project's finished runs that ended before before, and
// their journal entries, in batches of batchSize rows, each its own short
// statement, so that it never holds a lock a run needs for long: entries
// first (a run's cascade would be one huge statement), then the runs left
// empty. Runs still marked running are kept whatever their age, and so is
// their journal: recovery reads it. It stops between batches when ctx ends
// and returns what it did so far.
func (s *Store) Prune(ctx context.Context, projectID string, before time.Time, batchSize int) (PruneStats, error) {
	if batchSize <= 0 {
		batchSize = DefaultPruneBatch
	}
	var st PruneStats
	for _, step := range []struct {
		count *int64
		query string
	}{
		{&st.JournalEntries, `DELETE FROM syncd.journal WHERE id IN (
			SELECT j.id FROM syncd.runs r JOIN syncd.journal j ON j.run_id = r.id
			WHERE r.project_id = $1 AND r.finished_at < $2
			LIMIT $3)`},
		{&st.Runs, `DELETE FROM syncd.runs WHERE id IN (
			SELECT r.id FROM syncd.runs r
			WHERE r.project_id = $1 AND r.finished_at < $2
				AND NOT EXISTS (SELECT 1 FROM syncd.journal j WHERE j.run_id = r.id)
			LIMIT $3)`},
	} {
		for {
			if err := ctx.Err(); err != nil {
				return st, err
			}
			res, err := s.db.ExecContext(ctx, step.query, projectID, before, batchSize)
			if err != nil {
				return st, fmt.Errorf("state: prune: %w", err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return st, fmt.Errorf("state: prune: %w", err)
			}
			st.Batches++
			*step.count += n
			if n < int64(batchSize) {
				break
			}
		}
	}
	return st, nil
}

// Prunable counts what Prune would delete now, deleting nothing: for
// syncd prune --dry-run.
func (s *Store) Prunable(ctx context.Context, projectID string, before time.Time) (PruneStats, error) {
	var st PruneStats
	err := s.db.QueryRowContext(ctx, `SELECT
			(SELECT count(*) FROM syncd.runs r JOIN syncd.journal j ON j.run_id = r.id
				WHERE r.project_id = $1 AND r.finished_at < $2),
			(SELECT count(*) FROM syncd.runs WHERE project_id = $1 AND finished_at < $2)`,
		projectID, before).Scan(&st.JournalEntries, &st.Runs)
	if err != nil {
		return PruneStats{}, fmt.Errorf("state: count what to prune: %w", err)
	}
	return st, nil
}
