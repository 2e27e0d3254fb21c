package state

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// CloseFinishedJournals closes, as unknown, the entries that finished runs
// of the project left pending: answers a run could not record (its
// database connection cut, its journal writes failing) and that nothing
// else will. CloseJournal does the same for a run left "running".
func (s *Store) CloseFinishedJournals(ctx context.Context, projectID string) (int64, error) {
	res := s.gorm.WithContext(ctx).Model(&journalRow{}).
		Where("status = ? AND run_id IN (?)", StatusPending,
			s.gorm.Model(&runRow{}).Select("id").Where("project_id = ? AND outcome <> ?", projectID, OutcomeRunning)).
		Updates(map[string]any{"status": StatusUnknown, "finished_at": gorm.Expr("now()"),
			"error": gorm.Expr("COALESCE(error, ?)", "the run ended without recording Sinch's answer")})
	if res.Error != nil {
		return 0, fmt.Errorf("state: close the journals of finished runs: %w", res.Error)
	}
	return res.RowsAffected, nil
}

// Touched are the records and contacts other runs wrote (or tried to).
type Touched struct {
	ExternalIDs map[string]bool
	ContactIDs  map[string]bool
}

// TouchedSince is what the project's runs other than run journaled since t:
// what a full run that read before t must not act on any more, since a
// partial run has decided it since from fresher facts.
func (s *Store) TouchedSince(ctx context.Context, projectID string, t time.Time, run int64) (Touched, error) {
	out := Touched{ExternalIDs: map[string]bool{}, ContactIDs: map[string]bool{}}
	rows, err := s.db.QueryContext(ctx, `SELECT COALESCE(j.external_id, ''), COALESCE(j.contact_id, ''), COALESCE(j.source_contact_id, '')
		FROM syncd.journal j
		WHERE j.created_at >= $2 AND j.kind <> $4 AND j.run_id IN (
			SELECT id FROM syncd.runs WHERE project_id = $1 AND id <> $3 AND (finished_at IS NULL OR finished_at >= $2))`,
		projectID, t, run, KindReject)
	if err != nil {
		return out, fmt.Errorf("state: read what other runs wrote: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var ext, id, src string
		if err := rows.Scan(&ext, &id, &src); err != nil {
			return out, fmt.Errorf("state: read what other runs wrote: %w", err)
		}
		if ext != "" {
			out.ExternalIDs[ext] = true
		}
		for _, x := range []string{id, src} {
			if x != "" {
				out.ContactIDs[x] = true
			}
		}
	}
	if err := rows.Err(); err != nil {
		return out, fmt.Errorf("state: read what other runs wrote: %w", err)
	}
	return out, nil
}
