package crm

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/syncd/syncd/lease"
)

// Link ties a CRM record to the Sinch contact that mirrors it. ContentHash is
// the reconciler's fingerprint of what it last wrote, so an unchanged record
// costs no call.
type Link struct {
	ExternalID  string
	ContactID   string
	ContentHash string
	SyncedAt    time.Time
}

// linkChunk bounds the rows of one statement: 5 parameters a link stay under
// PostgreSQL's 65,535.
const linkChunk = 5000

// Links returns every link of a project, keyed by external_id.
func (s *Store) Links(ctx context.Context, projectID string) (map[string]Link, error) {
	rows, err := s.linkRows(ctx, projectID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	links := make(map[string]Link)
	for rows.Next() {
		var l Link
		if err := rows.Scan(&l.ExternalID, &l.ContactID, &l.ContentHash, &l.SyncedAt); err != nil {
			return nil, fmt.Errorf("crm: read links: %w", err)
		}
		links[l.ExternalID] = l
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("crm: read links: %w", err)
	}
	return links, nil
}

// EachLink calls fn with every link of a project, as Links would return
// them but without holding them all: a full run over a million links keeps
// what it needs of each and no map of them.
func (s *Store) EachLink(ctx context.Context, projectID string, fn func(Link)) error {
	rows, err := s.linkRows(ctx, projectID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var l Link
		if err := rows.Scan(&l.ExternalID, &l.ContactID, &l.ContentHash, &l.SyncedAt); err != nil {
			return fmt.Errorf("crm: read links: %w", err)
		}
		fn(l)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("crm: read links: %w", err)
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
		return nil, fmt.Errorf("crm: read links: %w", err)
	}
	return rows, nil
}

// SaveLinks inserts or replaces links, all or none. A zero SyncedAt means now;
// when links repeat an external_id the last one wins.
func (s *Store) SaveLinks(ctx context.Context, projectID string, links []Link) error {
	if len(links) == 0 {
		return nil
	}
	links = dedupeLast(links, func(l Link) string { return l.ExternalID })
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
		return fmt.Errorf("crm: save links: %w", err)
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
		return fmt.Errorf("crm: delete links: %w", err)
	}
	return nil
}

// Run is one sync run of a project, as recorded in syncd.runs.
type Run struct {
	ID         int64
	ProjectID  string
	Kind       string
	Outcome    string
	Error      string
	Host       string
	PID        int
	StartedAt  time.Time
	FinishedAt *time.Time
	Counts     map[string]int
	// PIDNamespace qualifies PID on its host (Linux: /proc/self/ns/pid);
	// empty where unknown.
	PIDNamespace string
	// LockPID and LockBackendStart name the session that held the project
	// lock for the run (see Lock.StartRun); zero for a run started without one.
	LockPID          int
	LockBackendStart time.Time
}

// ErrRunFinished is matched by FinishRun's error when the run is no longer
// running: its own process, or a successor's recovery, recorded its end.
var ErrRunFinished = errors.New("crm: run already finished")

// StartRun records the start of a run by this process (host and pid are
// recorded so an operator can tell whose run a stale "running" row was). It
// names no lock session: runs under the project lock start with
// Lock.StartRun.
func (s *Store) StartRun(ctx context.Context, projectID, kind string) (Run, error) {
	host, _ := os.Hostname()
	row := runRow{ProjectID: projectID, Kind: kind, Outcome: RunRunning, Counts: runCounts{},
		Host: nullIfZero(host), PID: nullIfZero(os.Getpid()), PIDNamespace: nullIfZero(pidNamespace())}
	if err := s.gorm.WithContext(ctx).Create(&row).Error; err != nil {
		return Run{}, fmt.Errorf("crm: start run: %w", err)
	}
	return row.run(), nil
}

// startRun inserts the run on the lock's session, naming that session, and
// inserts nothing (sql.ErrNoRows) unless it holds key. It is SQL by hand:
// it runs on the lock's own connection, outside gorm's pool, and checks
// pg_locks in the same statement.
func startRun(ctx context.Context, conn *sql.Conn, projectID, kind string, key lease.Key) (Run, error) {
	host, _ := os.Hostname()
	r := Run{ProjectID: projectID, Kind: kind, Outcome: RunRunning, Host: host, PID: os.Getpid(),
		PIDNamespace: pidNamespace(), Counts: map[string]int{}}
	held, args := key.Where(7)
	var lockStart sql.NullTime
	err := conn.QueryRowContext(ctx, `INSERT INTO syncd.runs (project_id, kind, outcome, host, pid, pid_namespace,
			lock_pid, lock_backend_start)
		SELECT $1, $2, $3, NULLIF($4, ''), $5, NULLIF($6, ''), a.pid, a.backend_start
		FROM (SELECT 1) AS one
		LEFT JOIN pg_stat_activity a ON a.pid = pg_backend_pid()
		WHERE EXISTS (SELECT 1 FROM pg_locks l
			WHERE l.pid = pg_backend_pid() AND l.granted AND `+held+`)
		RETURNING id, started_at, COALESCE(lock_pid, 0), lock_backend_start`,
		append([]any{projectID, kind, RunRunning, host, r.PID, r.PIDNamespace}, args...)...).
		Scan(&r.ID, &r.StartedAt, &r.LockPID, &lockStart)
	if err != nil {
		return Run{}, err
	}
	r.LockBackendStart = lockStart.Time
	return r, nil
}

// pidNamespace names this process's PID namespace, so that a pid recorded
// on a host can be told apart from the same pid in another container of
// that host; empty where there is none to read.
func pidNamespace() string {
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	return ns
}

// ProcessGone reports whether the run's process is known to have exited: it
// ran on this host, in this PID namespace, is not this process, and no
// process has its pid now. A process that is gone has no call in flight.
// False whenever that cannot be told, including when the pid was reused.
func (r Run) ProcessGone() bool {
	host, err := os.Hostname()
	if err != nil || r.Host == "" || r.Host != host || r.PIDNamespace == "" || r.PIDNamespace != pidNamespace() ||
		r.PID <= 0 || r.PID == os.Getpid() {
		return false
	}
	p, err := os.FindProcess(r.PID)
	if err != nil {
		return false
	}
	defer p.Release()
	return errors.Is(p.Signal(syscall.Signal(0)), os.ErrProcessDone)
}

// FinishRun records how a run ended. A run finishes once: finishing it again
// fails with ErrRunFinished, so that neither the run's own process (which
// lost its lock, say) nor a successor's recovery overwrites what the other
// recorded first.
func (s *Store) FinishRun(ctx context.Context, id int64, outcome string, counts map[string]int, errMsg string) error {
	if outcome == "" || outcome == RunRunning {
		return fmt.Errorf("crm: finish run %d: outcome %q does not end a run", id, outcome)
	}
	res := s.gorm.WithContext(ctx).Model(&runRow{}).Where("id = ? AND outcome = ?", id, RunRunning).
		Updates(map[string]any{"outcome": outcome, "counts": runCounts(counts), "error": nullIfZero(errMsg),
			"finished_at": gorm.Expr("now()")})
	if res.Error != nil {
		return fmt.Errorf("crm: finish run %d: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("crm: finish run %d: no such run, or %w", id, ErrRunFinished)
	}
	return nil
}

// LastRuns returns the project's n most recent runs, newest first; none for
// n <= 0.
func (s *Store) LastRuns(ctx context.Context, projectID string, n int) ([]Run, error) {
	if n <= 0 {
		return nil, nil
	}
	return s.findRuns(s.gorm.WithContext(ctx).Where("project_id = ?", projectID).Order("id DESC").Limit(n))
}

// InterruptedRuns returns the project's runs still marked running, oldest
// first. Only a caller holding the project lock can take them for dead, and
// even then not while the session that held the lock for them lives (see
// SessionAlive) or their process may still have calls in flight.
func (s *Store) InterruptedRuns(ctx context.Context, projectID string) ([]Run, error) {
	return s.findRuns(s.gorm.WithContext(ctx).Where("project_id = ? AND outcome = ?", projectID, RunRunning).Order("id"))
}

func (s *Store) findRuns(q *gorm.DB) ([]Run, error) {
	var rows []runRow
	if err := q.Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("crm: read runs: %w", err)
	}
	runs := make([]Run, len(rows))
	for i, r := range rows {
		runs[i] = r.run()
	}
	return runs, nil
}

// JournalEntry is one planned operation of a run. It is written before the
// call to Sinch and marked when Sinch answers, so that after a crash the
// entries still pending say exactly which calls may or may not have happened.
type JournalEntry struct {
	ID              int64
	RunID           int64
	Kind            string
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
	Status     string
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
					status = JournalPending
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
			entries[i].Status = JournalPending
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
func (s *Store) JournalMark(ctx context.Context, id int64, status string, httpStatus int, errMsg, contactID string) error {
	set := map[string]any{"status": status, "http_status": nullIfZero(httpStatus), "error": nullIfZero(errMsg),
		"finished_at": gorm.Expr("now()")}
	if status == JournalPending {
		set["finished_at"] = nil
	}
	if contactID != "" {
		set["contact_id"] = contactID
	}
	res := s.gorm.WithContext(ctx).Model(&journalRow{}).Where("id = ?", id).Updates(set)
	if res.Error != nil {
		return fmt.Errorf("crm: mark journal entry %d: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("crm: mark journal entry %d: no such entry", id)
	}
	return nil
}

// JournalMark is Sinch's answer for one journal entry; see JournalMark.
type JournalMark struct {
	ID         int64
	Status     string
	HTTPStatus int
	Error      string
	ContactID  string
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
		for i, m := range chunk {
			ids[i], statuses[i], codes[i], errs[i], contacts[i] = m.ID, m.Status, int32(m.HTTPStatus), m.Error, m.ContactID
		}
		rows, err := s.db.QueryContext(ctx, `UPDATE syncd.journal j SET
				status = u.status,
				http_status = NULLIF(u.http_status, 0),
				error = NULLIF(u.error, ''),
				contact_id = COALESCE(NULLIF(u.contact_id, ''), j.contact_id),
				finished_at = CASE WHEN u.status = 'pending' THEN NULL ELSE now() END
			FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[], $5::text[])
				AS u (id, status, http_status, error, contact_id)
			WHERE j.id = u.id
			RETURNING j.id`, ids, statuses, codes, errs, contacts)
		if err != nil {
			return fmt.Errorf("crm: mark %d journal entries: %w", len(chunk), err)
		}
		found := make(map[int64]bool, len(chunk))
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("crm: mark %d journal entries: %w", len(chunk), err)
			}
			found[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("crm: mark %d journal entries: %w", len(chunk), err)
		}
		for _, id := range ids {
			if !found[id] {
				missing = append(missing, id)
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("crm: mark journal entries %v: no such entry", missing)
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
		Where("run_id = ? AND status = ?", runID, JournalPending).
		Updates(map[string]any{"status": JournalUnknown, "finished_at": gorm.Expr("now()"),
			"error": gorm.Expr("COALESCE(error, ?)", "the run stopped before Sinch answered")})
	if res.Error != nil {
		return 0, fmt.Errorf("crm: close the journal of run %d: %w", runID, res.Error)
	}
	return res.RowsAffected, nil
}

// Rejects returns up to n of a run's rejected entries: CRM rows and contacts
// the run skipped, with their reasons.
func (s *Store) Rejects(ctx context.Context, runID int64, n int) ([]JournalEntry, error) {
	return s.findJournal(s.gorm.WithContext(ctx).Where("run_id = ? AND status = ?", runID, JournalRejected).Order("id").Limit(n))
}

func (s *Store) findJournal(q *gorm.DB) ([]JournalEntry, error) {
	var rows []journalRow
	if err := q.Select(journalSelect).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("crm: read journal: %w", err)
	}
	out := make([]JournalEntry, len(rows))
	for i, r := range rows {
		out[i] = r.entry()
	}
	return out, nil
}

// Watermark returns where the project's last incremental run left off; false
// when there is none yet, so the next run has to be a full one.
func (s *Store) Watermark(ctx context.Context, projectID string) (time.Time, bool, error) {
	var rows []watermarkRow
	if err := s.gorm.WithContext(ctx).Where("project_id = ?", projectID).Limit(1).Find(&rows).Error; err != nil {
		return time.Time{}, false, fmt.Errorf("crm: read watermark: %w", err)
	}
	if len(rows) == 0 {
		return time.Time{}, false, nil
	}
	return rows[0].UpdatedAt, true, nil
}

// SetWatermark stores the project's watermark; see ChangedSince for what it
// should be.
func (s *Store) SetWatermark(ctx context.Context, projectID string, t time.Time) error {
	err := s.gorm.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "project_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"updated_at"}),
	}).Create(&watermarkRow{ProjectID: projectID, UpdatedAt: t}).Error
	if err != nil {
		return fmt.Errorf("crm: set watermark: %w", err)
	}
	return nil
}

func (s *Store) inTx(ctx context.Context, what string, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("crm: %s: %w", what, err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return fmt.Errorf("crm: %s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("crm: %s: %w", what, err)
	}
	return nil
}

// Now is the database server's clock. Watermarks are compared with
// updated_at, which the server stamps, so they must come from the same clock.
func (s *Store) Now(ctx context.Context) (time.Time, error) {
	var t time.Time
	if err := s.db.QueryRowContext(ctx, `SELECT now()`).Scan(&t); err != nil {
		return time.Time{}, fmt.Errorf("crm: read server clock: %w", err)
	}
	return t, nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }
