package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/planner"
)

// linkChunk bounds the rows of one statement: 5 parameters a link stay under
// PostgreSQL's 65,535.
const linkChunk = 5000

// Links returns every link of a project, keyed by external_id.
func (s *Store) Links(ctx context.Context, projectID string) (map[string]planner.Link, error) {
	rows, err := s.linkRows(ctx, projectID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	links := make(map[string]planner.Link)
	for rows.Next() {
		var l planner.Link
		if err := rows.Scan(&l.ExternalID, &l.ContactID, &l.ContentHash, &l.SyncedAt); err != nil {
			return nil, fmt.Errorf("state: read links: %w", err)
		}
		links[l.ExternalID] = l
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("state: read links: %w", err)
	}
	return links, nil
}

// EachLink calls fn with every link of a project, as Links would return
// them but without holding them all: a full run over a million links keeps
// what it needs of each and no map of them.
func (s *Store) EachLink(ctx context.Context, projectID string, fn func(planner.Link)) error {
	rows, err := s.linkRows(ctx, projectID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var l planner.Link
		if err := rows.Scan(&l.ExternalID, &l.ContactID, &l.ContentHash, &l.SyncedAt); err != nil {
			return fmt.Errorf("state: read links: %w", err)
		}
		fn(l)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("state: read links: %w", err)
	}
	return nil
}

// linkRows queries a project's links through the model but scans them by
// hand: gorm's per-row reflection (ScanRows, Find) costs more than the rest
// of the read at a million links (see doc.go).
func (s *Store) linkRows(ctx context.Context, projectID string) (*sql.Rows, error) {
	rows, err := s.gorm.WithContext(ctx).Model(&linkRow{}).
		Select("external_id", "contact_id", "content_hash", "synced_at").
		Where("project_id = ?", projectID).Rows()
	if err != nil {
		return nil, fmt.Errorf("state: read links: %w", err)
	}
	return rows, nil
}

// SaveLinks inserts or replaces links, all or none. A zero SyncedAt means now;
// when links repeat an external_id the last one wins.
func (s *Store) SaveLinks(ctx context.Context, projectID string, links []planner.Link) error {
	if len(links) == 0 {
		return nil
	}
	links = dedupeLast(links, func(l planner.Link) string { return l.ExternalID })
	now := time.Now()
	rows := make([]linkRow, len(links))
	for i, l := range links {
		rows[i] = linkRow{ProjectID: projectID, ExternalID: l.ExternalID, ContactID: l.ContactID,
			ContentHash: l.ContentHash, SyncedAt: l.SyncedAt}
		if l.SyncedAt.IsZero() {
			rows[i].SyncedAt = now
		}
	}
	err := s.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return tx.Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "project_id"}, {Name: "external_id"}},
			DoUpdates: clause.AssignmentColumns([]string{"contact_id", "content_hash", "synced_at"}),
		}).CreateInBatches(rows, linkChunk).Error
	})
	if err != nil {
		return fmt.Errorf("state: save links: %w", err)
	}
	return nil
}

// DeleteLinks removes the links of the given external_ids; unknown ids are
// ignored.
func (s *Store) DeleteLinks(ctx context.Context, projectID string, externalIDs []string) error {
	if len(externalIDs) == 0 {
		return nil
	}
	err := s.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for chunk := range slices.Chunk(externalIDs, linkChunk) {
			if err := tx.Where("project_id = ? AND external_id IN ?", projectID, chunk).Delete(&linkRow{}).Error; err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("state: delete links: %w", err)
	}
	return nil
}

// LinkOf returns the link of a CRM record; false when it has none.
func (s *Store) LinkOf(ctx context.Context, projectID, externalID string) (planner.Link, bool, error) {
	return s.link(ctx, `external_id = $2`, projectID, externalID)
}

// LinkByContact returns the link that names a Sinch contact; false when
// none does.
func (s *Store) LinkByContact(ctx context.Context, projectID, contactID string) (planner.Link, bool, error) {
	return s.link(ctx, `contact_id = $2`, projectID, contactID)
}

func (s *Store) link(ctx context.Context, where, projectID, key string) (planner.Link, bool, error) {
	var l planner.Link
	err := s.db.QueryRowContext(ctx, `SELECT external_id, contact_id, content_hash, synced_at
		FROM syncd.links WHERE project_id = $1 AND `+where+` ORDER BY synced_at DESC LIMIT 1`, projectID, key).
		Scan(&l.ExternalID, &l.ContactID, &l.ContentHash, &l.SyncedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return planner.Link{}, false, nil
	}
	if err != nil {
		return planner.Link{}, false, fmt.Errorf("state: read link: %w", err)
	}
	return l, true, nil
}

// VanishedLinks are the stored links whose record is no longer in the
// source at all: a hard DELETE, or a row a view stopped showing. An
// incremental run reads only rows that changed, and a row that is gone does
// not change; this set difference is how it notices them without a full
// run.
func (s *Store) VanishedLinks(ctx context.Context, projectID string, source crm.Source) ([]planner.Link, error) {
	rel, err := source.FromItem()
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT l.external_id, l.contact_id FROM syncd.links l
		WHERE l.project_id = $1 AND NOT EXISTS (SELECT 1 FROM `+rel+` WHERE src.external_id = l.external_id)
		ORDER BY l.external_id`, projectID)
	if err != nil {
		return nil, fmt.Errorf("state: find links whose record vanished from %s: %w", source.String(), err)
	}
	defer rows.Close()
	var out []planner.Link
	for rows.Next() {
		var l planner.Link
		if err := rows.Scan(&l.ExternalID, &l.ContactID); err != nil {
			return nil, fmt.Errorf("state: find links whose record vanished from %s: %w", source.String(), err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("state: find links whose record vanished from %s: %w", source.String(), err)
	}
	return out, nil
}
