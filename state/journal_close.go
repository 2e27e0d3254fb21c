package state

import (
	"context"
	"fmt"

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
