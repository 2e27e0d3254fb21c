package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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

// Pending returns up to limit events still to be processed, oldest first.
// A payload that no longer parses (it was verified, so this is a bug) is
// returned with only its trigger set, for the caller to mark done.
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
		FROM syncd.webhook_events WHERE project_id = ? AND done_at IS NULL ORDER BY id LIMIT ?`,
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

// Failed records a failed attempt at events, which stay pending.
func (e *Events) Failed(ctx context.Context, ids []int64, errMsg string) error {
	if len(ids) == 0 {
		return nil
	}
	err := e.db.WithContext(ctx).Exec(`UPDATE syncd.webhook_events
		SET attempts = attempts + 1, error = ? WHERE id IN ? AND done_at IS NULL`, errMsg, ids).Error
	if err != nil {
		return fmt.Errorf("state: record failed events: %w", err)
	}
	return nil
}

// Queue is the state of a project's event queue.
type Queue struct {
	Pending       int        `json:"pending"`
	OldestPending *time.Time `json:"oldest_pending,omitempty"` // when the oldest pending event was received
	Retried       int        `json:"retried"`                  // pending events that failed at least once
	LastError     string     `json:"last_error,omitempty"`
	DoneLastHour  int        `json:"done_last_hour"`
}

// Queue reads the state of the project's event queue.
func (e *Events) Queue(ctx context.Context, projectID string) (Queue, error) {
	var q struct {
		Pending      int
		Oldest       *time.Time
		Retried      int
		DoneLastHour int
	}
	err := e.db.WithContext(ctx).Raw(`SELECT
			count(*) FILTER (WHERE done_at IS NULL) AS pending,
			min(received_at) FILTER (WHERE done_at IS NULL) AS oldest,
			count(*) FILTER (WHERE done_at IS NULL AND attempts > 0) AS retried,
			count(*) FILTER (WHERE done_at > now() - interval '1 hour') AS done_last_hour
		FROM syncd.webhook_events WHERE project_id = ?`, projectID).Scan(&q).Error
	if err != nil {
		return Queue{}, fmt.Errorf("state: read the event queue: %w", err)
	}
	out := Queue{Pending: q.Pending, OldestPending: q.Oldest, Retried: q.Retried, DoneLastHour: q.DoneLastHour}
	if q.Retried > 0 {
		var last struct{ Error *string }
		if err := e.db.WithContext(ctx).Raw(`SELECT error FROM syncd.webhook_events
			WHERE project_id = ? AND done_at IS NULL AND error IS NOT NULL ORDER BY id DESC LIMIT 1`, projectID).
			Scan(&last).Error; err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
			return Queue{}, fmt.Errorf("state: read the event queue: %w", err)
		}
		if last.Error != nil {
			out.LastError = *last.Error
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
