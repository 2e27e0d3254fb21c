package state

import (
	"context"
	"fmt"

	"github.com/syncd/syncd/planner"
)

// Answer is a create, patch or merge Sinch answered (done), known by the
// hash of the contact it answered with (JournalMark.AnswerHash).
type Answer struct {
	Hash            string
	Kind            planner.OpKind
	ContactID       string
	SourceContactID string // a merge's source, which it removed
}

// Answers returns the project's done writes whose answer hashed to one of
// hashes, as far back as retention keeps the journal: what syncd itself
// left those contacts as.
func (s *Store) Answers(ctx context.Context, projectID string, hashes []string) ([]Answer, error) {
	if len(hashes) == 0 {
		return nil, nil
	}
	rows, err := s.db.QueryContext(ctx, `SELECT j.answer_hash, j.kind, j.contact_id, COALESCE(j.source_contact_id, '')
		FROM syncd.journal j JOIN syncd.runs r ON r.id = j.run_id
		WHERE j.answer_hash = ANY($2::text[]) AND j.status = 'done' AND r.project_id = $1`, projectID, hashes)
	if err != nil {
		return nil, fmt.Errorf("state: read the journal's answers: %w", err)
	}
	defer rows.Close()
	var out []Answer
	for rows.Next() {
		var a Answer
		if err := rows.Scan(&a.Hash, &a.Kind, &a.ContactID, &a.SourceContactID); err != nil {
			return nil, fmt.Errorf("state: read the journal's answers: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("state: read the journal's answers: %w", err)
	}
	return out, nil
}

// WrittenContacts returns those of ids that a done write of one of kinds
// (by its contact_id: a delete's, a merge's destination) of the project
// touched, as far back as retention keeps the journal.
func (s *Store) WrittenContacts(ctx context.Context, projectID string, ids []string, kinds ...planner.OpKind) ([]string, error) {
	if len(ids) == 0 || len(kinds) == 0 {
		return nil, nil
	}
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = string(k)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT j.contact_id
		FROM syncd.journal j JOIN syncd.runs r ON r.id = j.run_id
		WHERE j.contact_id = ANY($2::text[]) AND j.kind = ANY($3::text[]) AND j.status = 'done' AND r.project_id = $1
		ORDER BY 1`, projectID, ids, names)
	if err != nil {
		return nil, fmt.Errorf("state: read the journal's writes: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("state: read the journal's writes: %w", err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("state: read the journal's writes: %w", err)
	}
	return out, nil
}
