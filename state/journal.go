package state

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/syncd/syncd/planner"
)

// JournalEntry is one planned operation of a run. It is written before the
// call to Sinch and marked when Sinch answers, so that after a crash the
// entries still pending say exactly which calls may or may not have happened.
type JournalEntry struct {
	ID              int64
	RunID           int64
	Kind            planner.OpKind // or KindReject
	ExternalID      string
	ContactID       string
	SourceContactID string   // merge: the contact that disappears into ContactID
	UpdateMask      []string // patch: nil when not applicable
	// Contacts are the full contacts a merge or delete touches, as JSON (an
	// array of Sinch contacts), kept because the operation cannot be undone.
	Contacts []byte
	// Changes are the values a create sent, or a patch's fields with the
	// value Sinch held and the one sent, as JSON (an array of {"field",
	// "old", "new"}), so that a record's history reads old -> new.
	Changes    []byte
	Reason     string
	Status     Status
	HTTPStatus int
	Error      string
	CreatedAt  time.Time
	FinishedAt *time.Time
}

// journalChunk keeps a statement at 13,000 parameters.
const journalChunk = 1000

// JournalAppend writes entries in one transaction and sets their ID and
// CreatedAt in place. An empty Status means pending. IDs grow in slice order,
// so ordering by id replays a run in the order it was planned.
func (s *Store) JournalAppend(ctx context.Context, entries []JournalEntry) error {
	if len(entries) == 0 {
		return nil
	}
	var (
		ids     []int64
		created = make(map[int64]time.Time, len(entries))
	)
	err := s.inTx(ctx, "append to journal", func(tx *sql.Tx) error {
		// Ids are drawn first so each entry knows its own: the order of rows
		// from INSERT ... RETURNING is not something PostgreSQL promises.
		rows, err := tx.QueryContext(ctx, `SELECT nextval(pg_get_serial_sequence('syncd.journal', 'id'))
			FROM generate_series(1, $1)`, len(entries))
		if err != nil {
			return err
		}
		ids = make([]int64, 0, len(entries))
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(ids) != len(entries) {
			return fmt.Errorf("drew %d ids for %d entries", len(ids), len(entries))
		}
		slices.Sort(ids)
		for start := 0; start < len(entries); start += journalChunk {
			end := min(start+journalChunk, len(entries))
			var sb strings.Builder
			sb.WriteString(`INSERT INTO syncd.journal (id, run_id, kind, external_id, contact_id,
				source_contact_id, update_mask, reason, status, http_status, error, contacts, changes) VALUES `)
			args := make([]any, 0, (end-start)*13)
			for i := start; i < end; i++ {
				e := entries[i]
				if i > start {
					sb.WriteString(", ")
				}
				n := len(args)
				fmt.Fprintf(&sb, "($%d, $%d, $%d, NULLIF($%d, ''), NULLIF($%d, ''), NULLIF($%d, ''), $%d, NULLIF($%d, ''), $%d, NULLIF($%d, 0), NULLIF($%d, ''), $%d::jsonb, $%d::jsonb)",
					n+1, n+2, n+3, n+4, n+5, n+6, n+7, n+8, n+9, n+10, n+11, n+12, n+13)
				status := e.Status
				if status == "" {
					status = StatusPending
				}
				args = append(args, ids[i], e.RunID, e.Kind, e.ExternalID, e.ContactID, e.SourceContactID,
					e.UpdateMask, e.Reason, status, e.HTTPStatus, e.Error, jsonOrNull(e.Contacts), jsonOrNull(e.Changes))
			}
			sb.WriteString(" RETURNING id, created_at")
			rows, err := tx.QueryContext(ctx, sb.String(), args...)
			if err != nil {
				return err
			}
			for rows.Next() {
				var (
					id int64
					at time.Time
				)
				if err := rows.Scan(&id, &at); err != nil {
					rows.Close()
					return err
				}
				created[id] = at
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Filled only once committed, so a failed append leaves the caller's
	// entries as they were.
	for i := range entries {
		entries[i].ID = ids[i]
		entries[i].CreatedAt = created[ids[i]]
		if entries[i].Status == "" {
			entries[i].Status = StatusPending
		}
	}
	return nil
}

// jsonOrNull is a jsonb parameter: NULL unless given.
func jsonOrNull(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// JournalMark records Sinch's answer for an entry. httpStatus 0 and an empty
// errMsg store nothing; a non-empty contactID fills in the contact a create
// produced.
func (s *Store) JournalMark(ctx context.Context, id int64, status Status, httpStatus int, errMsg, contactID string) error {
	set := map[string]any{"status": status, "http_status": nullIfZero(httpStatus), "error": nullIfZero(errMsg),
		"finished_at": gorm.Expr("now()")}
	if status == StatusPending {
		set["finished_at"] = nil
	}
	if contactID != "" {
		set["contact_id"] = contactID
	}
	res := s.gorm.WithContext(ctx).Model(&journalRow{}).Where("id = ?", id).Updates(set)
	if res.Error != nil {
		return fmt.Errorf("state: mark journal entry %d: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("state: mark journal entry %d: no such entry", id)
	}
	return nil
}

// JournalMark is Sinch's answer for one journal entry; see JournalMark.
type JournalMark struct {
	ID         int64
	Status     Status
	HTTPStatus int
	Error      string
	ContactID  string
	// AnswerHash is planner.ContactHash of the contact Sinch answered a
	// create, patch or merge with, kept so that the callback of that write
	// is known for its echo without a read (see Answers); "" for none.
	AnswerHash string
}

// markChunk bounds the arrays of one JournalMarks statement.
const markChunk = 5000

// JournalMarks records many answers at once, each as JournalMark would, in
// one statement per few thousand marks: a run's operations finish hundreds
// a second, and one UPDATE (and one commit) apiece would make the journal,
// not Sinch, the limit. When marks repeat an id the last one wins. An id
// with no entry is an error, after the others are stored.
func (s *Store) JournalMarks(ctx context.Context, marks []JournalMark) error {
	marks = dedupeLast(marks, func(m JournalMark) string { return strconv.FormatInt(m.ID, 10) })
	var missing []int64
	for chunk := range slices.Chunk(marks, markChunk) {
		ids := make([]int64, len(chunk))
		statuses := make([]string, len(chunk))
		codes := make([]int32, len(chunk))
		errs := make([]string, len(chunk))
		contacts := make([]string, len(chunk))
		hashes := make([]string, len(chunk))
		for i, m := range chunk {
			ids[i], statuses[i], codes[i], errs[i], contacts[i] = m.ID, string(m.Status), int32(m.HTTPStatus), m.Error, m.ContactID
			hashes[i] = m.AnswerHash
		}
		rows, err := s.db.QueryContext(ctx, `UPDATE syncd.journal j SET
				status = u.status,
				http_status = NULLIF(u.http_status, 0),
				error = NULLIF(u.error, ''),
				contact_id = COALESCE(NULLIF(u.contact_id, ''), j.contact_id),
				answer_hash = NULLIF(u.answer_hash, ''),
				finished_at = CASE WHEN u.status = 'pending' THEN NULL ELSE now() END
			FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[])
				AS u (id, status, http_status, error, contact_id, answer_hash)
			WHERE j.id = u.id
			RETURNING j.id`, ids, statuses, codes, errs, contacts, hashes)
		if err != nil {
			return fmt.Errorf("state: mark %d journal entries: %w", len(chunk), err)
		}
		found := make(map[int64]bool, len(chunk))
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("state: mark %d journal entries: %w", len(chunk), err)
			}
			found[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("state: mark %d journal entries: %w", len(chunk), err)
		}
		for _, id := range ids {
			if !found[id] {
				missing = append(missing, id)
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("state: mark journal entries %v: no such entry", missing)
	}
	return nil
}

// Journal returns a run's entries in the order they were appended.
func (s *Store) Journal(ctx context.Context, runID int64) ([]JournalEntry, error) {
	return s.findJournal(s.gorm.WithContext(ctx).Where("run_id = ?", runID).Order("id"))
}

// CloseJournal marks the entries a stopped run left pending as unknown:
// they were journaled before they were sent, and nothing says whether Sinch
// got them. The next run reads Sinch afresh and finds out; the journal must
// not keep claiming that they are still under way.
func (s *Store) CloseJournal(ctx context.Context, runID int64) (int64, error) {
	res := s.gorm.WithContext(ctx).Model(&journalRow{}).
		Where("run_id = ? AND status = ?", runID, StatusPending).
		Updates(map[string]any{"status": StatusUnknown, "finished_at": gorm.Expr("now()"),
			"error": gorm.Expr("COALESCE(error, ?)", "the run stopped before Sinch answered")})
	if res.Error != nil {
		return 0, fmt.Errorf("state: close the journal of run %d: %w", runID, res.Error)
	}
	return res.RowsAffected, nil
}

// Rejects returns up to n of a run's rejected entries: CRM rows and contacts
// the run skipped, with their reasons.
func (s *Store) Rejects(ctx context.Context, runID int64, n int) ([]JournalEntry, error) {
	return s.findJournal(s.gorm.WithContext(ctx).Where("run_id = ? AND status = ?", runID, StatusRejected).Order("id").Limit(n))
}

func (s *Store) findJournal(q *gorm.DB) ([]JournalEntry, error) {
	var rows []journalRow
	if err := q.Select(journalSelect).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("state: read journal: %w", err)
	}
	out := make([]JournalEntry, len(rows))
	for i, r := range rows {
		out[i] = r.entry()
	}
	return out, nil
}

func (s *Store) inTx(ctx context.Context, what string, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("state: %s: %w", what, err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return fmt.Errorf("state: %s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("state: %s: %w", what, err)
	}
	return nil
}
