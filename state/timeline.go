package state

import (
	"context"
	"fmt"
	"time"
)

// TimelineEntry is a journal entry with the run it belongs to.
type TimelineEntry struct {
	JournalEntry
	RunKind      RunKind
	RunStartedAt time.Time
}

// Timeline returns, oldest first, every journal entry of the project about
// a record or a contact: entries for externalID, and entries that name
// contactID as their contact or as a merge's source. Either may be empty.
// It reads what retention has kept.
func (s *Store) Timeline(ctx context.Context, projectID, externalID, contactID string) ([]TimelineEntry, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT j.id, j.run_id, j.kind, COALESCE(j.external_id, ''),
			COALESCE(j.contact_id, ''), COALESCE(j.source_contact_id, ''), to_jsonb(j.update_mask)::text,
			COALESCE(j.reason, ''), j.status, COALESCE(j.http_status, 0), COALESCE(j.error, ''),
			j.created_at, j.finished_at, r.kind, r.started_at, j.contacts::text, j.changes::text
		FROM syncd.journal j JOIN syncd.runs r ON r.id = j.run_id
		WHERE r.project_id = $1 AND (
			($2 <> '' AND j.external_id = $2) OR
			($3 <> '' AND (j.contact_id = $3 OR j.source_contact_id = $3)))
		ORDER BY j.id`, projectID, externalID, contactID)
	if err != nil {
		return nil, fmt.Errorf("state: read journal: %w", err)
	}
	defer rows.Close()
	var out []TimelineEntry
	for rows.Next() {
		var (
			e    TimelineEntry
			mask []byte
		)
		if err := rows.Scan(&e.ID, &e.RunID, &e.Kind, &e.ExternalID, &e.ContactID, &e.SourceContactID, &mask,
			&e.Reason, &e.Status, &e.HTTPStatus, &e.Error, &e.CreatedAt, &e.FinishedAt, &e.RunKind, &e.RunStartedAt, &e.Contacts,
			&e.Changes); err != nil {
			return nil, fmt.Errorf("state: read journal: %w", err)
		}
		if mask != nil {
			if e.UpdateMask, err = decodeTextArray(mask); err != nil {
				return nil, fmt.Errorf("state: read journal entry %d: update_mask: %w", e.ID, err)
			}
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("state: read journal: %w", err)
	}
	return out, nil
}
