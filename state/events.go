package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"

	"github.com/syncd/syncd/webhook"
)

// EventsChannel is notified, with the project id as payload, in the
// transaction that stores new events of that project (a trigger of
// migration 00008), whichever process stored them: the one that holds the
// project lock LISTENs to it to process events another one received.
const EventsChannel = "syncd_webhook_events"

// Events is the queue of the Sinch contact events syncd received, and the
// nonces of the verified callbacks that brought them (migration 00006): the
// webhook handler stores each event once (Events is a webhook.EventStore),
// and event runs take them. It is safe for concurrent use.
type Events struct {
	db  *gorm.DB
	sql *sql.DB
}

// Events is the event queue in this database.
func (s *Store) Events() *Events { return &Events{db: s.gorm, sql: s.db} }

// StoredEvent is an event as the queue holds it.
type StoredEvent struct {
	ID         int64
	Trigger    string
	EventTime  time.Time // zero when Sinch sent none
	ReceivedAt time.Time
	Attempts   int
	Event      webhook.Event
}

// saveBatch stores a batch of callbacks in one statement, hence one round
// trip and one commit for many callbacks, which is what lets a receiver
// keep up with a burst on a busy server. It answers with the nonces that
// were new and the keys of the events stored.
const saveBatch = `WITH input AS (
		SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
			WITH ORDINALITY AS u (nonce, event_key, trigger, event_time, payload, ord)
	), fresh AS (
		INSERT INTO syncd.webhook_nonces (nonce) SELECT nonce FROM input
		ON CONFLICT DO NOTHING RETURNING nonce
	), firsts AS (
		-- Of the receipts that repeat a nonce within the batch, the first
		-- takes it; the others are replays.
		SELECT DISTINCT ON (nonce) input.* FROM input JOIN fresh USING (nonce) ORDER BY nonce, ord
	), stored AS (
		INSERT INTO syncd.webhook_events (project_id, event_key, trigger, event_time, payload)
		SELECT $1, event_key, trigger, NULLIF(event_time, '')::timestamptz, payload::jsonb FROM firsts ORDER BY ord
		ON CONFLICT (project_id, event_key) DO NOTHING RETURNING event_key
	)
	SELECT 'nonce', nonce FROM fresh UNION ALL SELECT 'event', event_key FROM stored`

// SaveCallbacks stores the callbacks of one project, in one statement. A
// nonce seen before (in an earlier batch or earlier in this one) is a
// replay and stores nothing; an event already stored is a duplicate and is
// not stored again.
func (e *Events) SaveCallbacks(ctx context.Context, projectID string, cbs []webhook.Callback) ([]webhook.Saved, error) {
	cols := make([][]string, 5)
	for i := range cols {
		cols[i] = make([]string, len(cbs))
	}
	for i, c := range cbs {
		cols[0][i], cols[1][i], cols[2][i], cols[4][i] = c.Nonce, c.Key, c.Event.Trigger, string(c.Body)
		if !c.Event.EventTime.IsZero() {
			cols[3][i] = c.Event.EventTime.Format(time.RFC3339Nano)
		}
	}
	// database/sql rather than gorm: gorm would expand the slices into
	// value lists, and a constant statement is prepared once.
	rows, err := e.sql.QueryContext(ctx, saveBatch, projectID, cols[0], cols[1], cols[2], cols[3], cols[4])
	if err != nil {
		return nil, fmt.Errorf("state: store events: %w", err)
	}
	defer rows.Close()
	unclaimed := make(map[string]bool, len(cbs))
	stored := make(map[string]bool, len(cbs))
	for rows.Next() {
		var kind, v string
		if err := rows.Scan(&kind, &v); err != nil {
			return nil, fmt.Errorf("state: store events: %w", err)
		}
		if kind == "nonce" {
			unclaimed[v] = true
		} else {
			stored[v] = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("state: store events: %w", err)
	}
	results := make([]webhook.Saved, len(cbs))
	for i, c := range cbs {
		if !unclaimed[c.Nonce] {
			results[i] = webhook.Replayed
			continue
		}
		delete(unclaimed, c.Nonce)
		// Two copies of one event: the first is stored, the other is its
		// duplicate.
		if !stored[c.Key] {
			results[i] = webhook.Duplicate
		}
		delete(stored, c.Key)
	}
	return results, nil
}

// Pending returns up to limit events ready to be processed, oldest first:
// neither done nor parked, and past their next attempt's time if they
// failed before. A payload that no longer parses (it was verified, so this
// is a bug) is returned with only its trigger set, for the caller to mark
// done.
func (e *Events) Pending(ctx context.Context, projectID string, limit int) ([]StoredEvent, error) {
	type row struct {
		ID         int64
		Trigger    string
		EventTime  *time.Time
		ReceivedAt time.Time
		Attempts   int
		Payload    string
	}
	var rows []row
	err := e.db.WithContext(ctx).Raw(`SELECT id, trigger, event_time, received_at, attempts, payload
		FROM syncd.webhook_events WHERE project_id = ? AND done_at IS NULL AND parked_at IS NULL
			AND (next_attempt_at IS NULL OR next_attempt_at <= now())
		ORDER BY id LIMIT ?`,
		projectID, limit).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("state: read pending events: %w", err)
	}
	out := make([]StoredEvent, len(rows))
	for i, r := range rows {
		out[i] = StoredEvent{ID: r.ID, Trigger: r.Trigger, ReceivedAt: r.ReceivedAt, Attempts: r.Attempts}
		if r.EventTime != nil {
			out[i].EventTime = *r.EventTime
		}
		if ev, err := webhook.ParseEvent([]byte(r.Payload)); err == nil {
			out[i].Event = ev
		} else {
			out[i].Event = webhook.Event{Trigger: r.Trigger}
		}
	}
	return out, nil
}

// Done marks events processed by the run runID.
func (e *Events) Done(ctx context.Context, ids []int64, runID int64) error {
	if len(ids) == 0 {
		return nil
	}
	err := e.db.WithContext(ctx).Exec(`UPDATE syncd.webhook_events
		SET done_at = now(), run_id = ?, attempts = attempts + 1, error = NULL
		WHERE id IN ? AND done_at IS NULL`, runID, ids).Error
	if err != nil {
		return fmt.Errorf("state: mark events done: %w", err)
	}
	return nil
}

// Failed records a failed attempt at events, which stay pending and are
// not tried again for retryAfter (by the database's clock).
func (e *Events) Failed(ctx context.Context, ids []int64, errMsg string, retryAfter time.Duration) error {
	if len(ids) == 0 {
		return nil
	}
	err := e.db.WithContext(ctx).Exec(`UPDATE syncd.webhook_events
		SET attempts = attempts + 1, error = ?, next_attempt_at = now() + make_interval(secs => ?)
		WHERE id IN ? AND done_at IS NULL`, errMsg, retryAfter.Seconds(), ids).Error
	if err != nil {
		return fmt.Errorf("state: record failed events: %w", err)
	}
	return nil
}

// Park records a last failed attempt at events and sets them aside, with
// reason: they are no longer pending, and wait for Requeue.
func (e *Events) Park(ctx context.Context, ids []int64, reason string) error {
	if len(ids) == 0 {
		return nil
	}
	err := e.db.WithContext(ctx).Exec(`UPDATE syncd.webhook_events
		SET attempts = attempts + 1, error = ?, parked_at = now(), next_attempt_at = NULL
		WHERE id IN ? AND done_at IS NULL AND parked_at IS NULL`, reason, ids).Error
	if err != nil {
		return fmt.Errorf("state: park events: %w", err)
	}
	return nil
}

// Requeue puts the project's parked events named by ids (every parked one
// when ids is nil) back in the queue as if just received: ready now, with
// no attempt counted. It notifies EventsChannel, in the same transaction,
// so that the process holding the project lock processes them at once, and
// returns the ids it requeued.
func (e *Events) Requeue(ctx context.Context, projectID string, ids []int64) ([]int64, error) {
	tx, err := e.sql.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("state: requeue events: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	rows, err := tx.QueryContext(ctx, `UPDATE syncd.webhook_events
		SET parked_at = NULL, next_attempt_at = NULL, attempts = 0, error = NULL
		WHERE project_id = $1 AND parked_at IS NOT NULL AND done_at IS NULL
			AND ($2::bigint[] IS NULL OR id = ANY($2::bigint[]))
		RETURNING id`, projectID, ids)
	if err != nil {
		return nil, fmt.Errorf("state: requeue events: %w", err)
	}
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("state: requeue events: %w", err)
		}
		out = append(out, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("state: requeue events: %w", err)
	}
	if len(out) > 0 {
		if _, err := tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, EventsChannel, projectID); err != nil {
			return nil, fmt.Errorf("state: requeue events: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("state: requeue events: %w", err)
	}
	slices.Sort(out)
	return out, nil
}

// CountParked counts the project's parked events.
func (e *Events) CountParked(ctx context.Context, projectID string) (int, error) {
	var n int
	err := e.db.WithContext(ctx).Raw(`SELECT count(*) FROM syncd.webhook_events
		WHERE project_id = ? AND parked_at IS NOT NULL AND done_at IS NULL`, projectID).Scan(&n).Error
	if err != nil {
		return 0, fmt.Errorf("state: count parked events: %w", err)
	}
	return n, nil
}

// ParkedEvent is an event set aside after failing alone too many times.
type ParkedEvent struct {
	ID         int64         `json:"id"`
	Trigger    string        `json:"trigger"`
	ReceivedAt time.Time     `json:"received_at"`
	ParkedAt   time.Time     `json:"parked_at"`
	Attempts   int           `json:"attempts"`
	Reason     string        `json:"reason"` // the error of its last attempt
	Event      webhook.Event `json:"-"`
}

// ParkedNaming returns, oldest first, up to limit of the project's parked
// events that name one of contactIDs as a contact (the contact of a create,
// update or delete, either of a merge's, one of a duplication's) or carry
// externalID (when not empty) as one's external_id.
func (e *Events) ParkedNaming(ctx context.Context, projectID string, contactIDs []string, externalID string, limit int) ([]ParkedEvent, error) {
	if contactIDs == nil {
		contactIDs = []string{}
	}
	vars, err := json.Marshal(map[string]any{"ids": contactIDs, "ext": externalID})
	if err != nil {
		return nil, fmt.Errorf("state: read parked events: %w", err)
	}
	// Each contact of a payload sits at one of these paths (webhook.Event).
	const named = `exists($.*.contact.id ? (@ == $ids[*])) ||
		exists($.*.preserved_contact.id ? (@ == $ids[*])) ||
		exists($.*.deleted_contact.id ? (@ == $ids[*])) ||
		exists($.*.duplicated_identities[*].contact_ids[*] ? (@ == $ids[*])) ||
		($ext != "" && (exists($.*.contact.external_id ? (@ == $ext)) ||
			exists($.*.preserved_contact.external_id ? (@ == $ext)) ||
			exists($.*.deleted_contact.external_id ? (@ == $ext))))`
	rows, err := e.sql.QueryContext(ctx, `SELECT id, trigger, received_at, parked_at, attempts, COALESCE(error, ''), payload::text
		FROM syncd.webhook_events
		WHERE project_id = $1 AND parked_at IS NOT NULL AND done_at IS NULL
			AND jsonb_path_match(payload, $2::jsonpath, $3::jsonb)
		ORDER BY id LIMIT $4`, projectID, named, string(vars), limit)
	if err != nil {
		return nil, fmt.Errorf("state: read parked events: %w", err)
	}
	defer rows.Close()
	var out []ParkedEvent
	for rows.Next() {
		var (
			p       ParkedEvent
			payload string
		)
		if err := rows.Scan(&p.ID, &p.Trigger, &p.ReceivedAt, &p.ParkedAt, &p.Attempts, &p.Reason, &payload); err != nil {
			return nil, fmt.Errorf("state: read parked events: %w", err)
		}
		if ev, err := webhook.ParseEvent([]byte(payload)); err == nil {
			p.Event = ev
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("state: read parked events: %w", err)
	}
	return out, nil
}

// Queue is the state of a project's event queue.
type Queue struct {
	Pending       int        `json:"pending"`                  // neither done nor parked
	OldestPending *time.Time `json:"oldest_pending,omitempty"` // when the oldest pending event was received
	Retried       int        `json:"retried"`                  // pending events that failed at least once
	// NextRetry is when the first of the retried events is due again.
	NextRetry    *time.Time `json:"next_retry,omitempty"`
	LastError    string     `json:"last_error,omitempty"`
	DoneLastHour int        `json:"done_last_hour"`
	// Parked are the events set aside after failing alone too many times,
	// which `syncd events retry` puts back; ParkedReasons say why, the
	// commonest reasons first.
	Parked        int            `json:"parked"`
	ParkedReasons []ParkedReason `json:"parked_reasons"`
}

// ParkedReason is one reason events were parked for: how many, and the ids
// of the first of them.
type ParkedReason struct {
	Reason string  `json:"reason"`
	Events int     `json:"events"`
	IDs    []int64 `json:"ids"` // the first parkedIDsShown, oldest first
}

// Of parked events, Queue groups the reasons of parkedReasonsShown and
// lists parkedIDsShown ids for each.
const (
	parkedReasonsShown = 5
	parkedIDsShown     = 10
)

// Queue reads the state of the project's event queue.
func (e *Events) Queue(ctx context.Context, projectID string) (Queue, error) {
	var q struct {
		Pending      int
		Oldest       *time.Time
		Retried      int
		NextRetry    *time.Time
		DoneLastHour int
		Parked       int
	}
	err := e.db.WithContext(ctx).Raw(`SELECT
			count(*) FILTER (WHERE done_at IS NULL AND parked_at IS NULL) AS pending,
			min(received_at) FILTER (WHERE done_at IS NULL AND parked_at IS NULL) AS oldest,
			count(*) FILTER (WHERE done_at IS NULL AND parked_at IS NULL AND attempts > 0) AS retried,
			min(next_attempt_at) FILTER (WHERE done_at IS NULL AND parked_at IS NULL AND attempts > 0) AS next_retry,
			count(*) FILTER (WHERE done_at > now() - interval '1 hour') AS done_last_hour,
			count(*) FILTER (WHERE done_at IS NULL AND parked_at IS NOT NULL) AS parked
		FROM syncd.webhook_events WHERE project_id = ?`, projectID).Scan(&q).Error
	if err != nil {
		return Queue{}, fmt.Errorf("state: read the event queue: %w", err)
	}
	out := Queue{Pending: q.Pending, OldestPending: q.Oldest, Retried: q.Retried, NextRetry: q.NextRetry,
		DoneLastHour: q.DoneLastHour, Parked: q.Parked, ParkedReasons: []ParkedReason{}}
	if q.Retried > 0 {
		var last struct{ Error *string }
		if err := e.db.WithContext(ctx).Raw(`SELECT error FROM syncd.webhook_events
			WHERE project_id = ? AND done_at IS NULL AND parked_at IS NULL AND error IS NOT NULL ORDER BY id DESC LIMIT 1`, projectID).
			Scan(&last).Error; err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
			return Queue{}, fmt.Errorf("state: read the event queue: %w", err)
		}
		if last.Error != nil {
			out.LastError = *last.Error
		}
	}
	if q.Parked > 0 {
		var reasons []struct {
			Reason string
			Events int
			IDs    string
		}
		if err := e.db.WithContext(ctx).Raw(`SELECT COALESCE(error, '') AS reason, count(*) AS events,
				to_jsonb((array_agg(id ORDER BY id))[1:?])::text AS ids
			FROM syncd.webhook_events WHERE project_id = ? AND done_at IS NULL AND parked_at IS NOT NULL
			GROUP BY 1 ORDER BY 2 DESC, min(id) LIMIT ?`, parkedIDsShown, projectID, parkedReasonsShown).Scan(&reasons).Error; err != nil {
			return Queue{}, fmt.Errorf("state: read the event queue: %w", err)
		}
		for _, r := range reasons {
			pr := ParkedReason{Reason: r.Reason, Events: r.Events}
			if err := json.Unmarshal([]byte(r.IDs), &pr.IDs); err != nil {
				return Queue{}, fmt.Errorf("state: read the event queue: %w", err)
			}
			out.ParkedReasons = append(out.ParkedReasons, pr)
		}
	}
	return out, nil
}

// PruneNonces forgets the nonces seen more than age ago (by the
// database's clock, which stamped them): a callback signed that long ago is
// refused by its timestamp anyway.
func (e *Events) PruneNonces(ctx context.Context, age time.Duration) error {
	err := e.db.WithContext(ctx).Exec(`DELETE FROM syncd.webhook_nonces
		WHERE seen_at < now() - make_interval(secs => ?)`, age.Seconds()).Error
	if err != nil {
		return fmt.Errorf("state: prune nonces: %w", err)
	}
	return nil
}
