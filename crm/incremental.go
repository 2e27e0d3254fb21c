package crm

import (
	"context"
	"fmt"
	"time"
)

// ReadHorizon is the latest point an incremental run may record as read up
// to: the server's clock, held back to the start of the oldest transaction
// in this database that has written anything (holds an xid). updated_at =
// now() stamps a row with its transaction's start, so a transaction that is
// still open can commit rows stamped as early as its own start; a watermark
// past that would skip them for good, however long the overlap.
//
// pg_stat_activity shows other roles' transactions only to members of
// pg_read_all_stats: give that role to syncd's user when CRM writers use
// another one (SPEC §2, and the README's permissions).
func (s *Store) ReadHorizon(ctx context.Context) (time.Time, error) {
	var t time.Time
	err := s.db.QueryRowContext(ctx, `SELECT LEAST(now(), COALESCE(
			(SELECT min(xact_start) FROM pg_stat_activity
			 WHERE datname = current_database() AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()),
			now()))`).Scan(&t)
	if err != nil {
		return time.Time{}, fmt.Errorf("crm: read the incremental horizon: %w", err)
	}
	return t, nil
}

// VanishedLinks are the stored links whose record is no longer in the
// source at all: a hard DELETE, or a row a view stopped showing. An
// incremental run reads only rows that changed, and a row that is gone does
// not change; this set difference is how it notices them without a full
// run.
func (s *Store) VanishedLinks(ctx context.Context, projectID string, source Source) ([]Link, error) {
	rel, err := source.from()
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT l.external_id, l.contact_id FROM syncd.links l
		WHERE l.project_id = $1 AND NOT EXISTS (SELECT 1 FROM `+rel+` WHERE src.external_id = l.external_id)
		ORDER BY l.external_id`, projectID)
	if err != nil {
		return nil, fmt.Errorf("crm: find links whose record vanished from %s: %w", source.String(), err)
	}
	defer rows.Close()
	var out []Link
	for rows.Next() {
		var l Link
		if err := rows.Scan(&l.ExternalID, &l.ContactID); err != nil {
			return nil, fmt.Errorf("crm: find links whose record vanished from %s: %w", source.String(), err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("crm: find links whose record vanished from %s: %w", source.String(), err)
	}
	return out, nil
}
