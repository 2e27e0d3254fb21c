package state

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm/clause"
)

// Watermark returns where the project's last incremental run left off; false
// when there is none yet, so the next run has to be a full one.
func (s *Store) Watermark(ctx context.Context, projectID string) (time.Time, bool, error) {
	var rows []watermarkRow
	if err := s.gorm.WithContext(ctx).Where("project_id = ?", projectID).Limit(1).Find(&rows).Error; err != nil {
		return time.Time{}, false, fmt.Errorf("state: read watermark: %w", err)
	}
	if len(rows) == 0 {
		return time.Time{}, false, nil
	}
	return rows[0].UpdatedAt, true, nil
}

// SetWatermark stores the project's watermark; see crm.Reader.ChangedSince
// for what it should be.
func (s *Store) SetWatermark(ctx context.Context, projectID string, t time.Time) error {
	err := s.gorm.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "project_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"updated_at"}),
	}).Create(&watermarkRow{ProjectID: projectID, UpdatedAt: t}).Error
	if err != nil {
		return fmt.Errorf("state: set watermark: %w", err)
	}
	return nil
}

// AdvanceWatermark moves the project's watermark to t, unless it is past t
// already: a full run that read from t on ends long after incremental runs
// that read later have moved it, and must not take it back.
func (s *Store) AdvanceWatermark(ctx context.Context, projectID string, t time.Time) error {
	if _, err := s.db.ExecContext(ctx, `INSERT INTO syncd.watermarks (project_id, updated_at) VALUES ($1, $2)
		ON CONFLICT (project_id) DO UPDATE SET updated_at = GREATEST(syncd.watermarks.updated_at, EXCLUDED.updated_at)`,
		projectID, t); err != nil {
		return fmt.Errorf("state: advance watermark: %w", err)
	}
	return nil
}
