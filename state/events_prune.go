package state

import (
	"context"
	"fmt"
	"time"

	"github.com/syncd/syncd/webhook"
)

// EventPruneStats counts what PruneEvents deleted, or would delete.
type EventPruneStats struct {
	Events  int64 // processed or parked events (their payloads hold names, phones, e-mails)
	Nonces  int64 // nonces of verified callbacks, of every project
	Batches int
}

// PruneEvents deletes the project's events processed, or parked, before
// before, in batches of batchSize rows, each a short statement of its own,
// and every project's nonces older than webhook.NonceRetention (by the
// database's clock, which stamped them). Events still queued are kept
// whatever their age: they are work to do, not history. A parked event
// that old is history too: its payload holds names, phones and e-mails,
// and any full run since has covered what it named. It stops between
// batches when ctx ends and returns what it did so far.
func (e *Events) PruneEvents(ctx context.Context, projectID string, before time.Time, batchSize int) (EventPruneStats, error) {
	if batchSize <= 0 {
		batchSize = DefaultPruneBatch
	}
	var st EventPruneStats
	for _, step := range []struct {
		count *int64
		query string
		args  []any
	}{
		{&st.Events, `DELETE FROM syncd.webhook_events WHERE id IN (
			SELECT id FROM syncd.webhook_events
			WHERE project_id = $1 AND done_at < $2
			UNION ALL
			SELECT id FROM syncd.webhook_events
			WHERE project_id = $1 AND done_at IS NULL AND parked_at < $2
			LIMIT $3)`, []any{projectID, before, batchSize}},
		{&st.Nonces, `DELETE FROM syncd.webhook_nonces WHERE nonce IN (
			SELECT nonce FROM syncd.webhook_nonces
			WHERE seen_at < now() - make_interval(secs => $1)
			LIMIT $2)`, []any{webhook.NonceRetention.Seconds(), batchSize}},
	} {
		for {
			if err := ctx.Err(); err != nil {
				return st, err
			}
			res, err := e.sql.ExecContext(ctx, step.query, step.args...)
			if err != nil {
				return st, fmt.Errorf("state: prune: %w", err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return st, fmt.Errorf("state: prune: %w", err)
			}
			st.Batches++
			*step.count += n
			if n < int64(batchSize) {
				break
			}
		}
	}
	return st, nil
}

// Prunable counts what PruneEvents would delete now, deleting nothing.
func (e *Events) Prunable(ctx context.Context, projectID string, before time.Time) (EventPruneStats, error) {
	var st EventPruneStats
	err := e.db.WithContext(ctx).Raw(`SELECT
			(SELECT count(*) FROM syncd.webhook_events WHERE project_id = ? AND (done_at < ? OR done_at IS NULL AND parked_at < ?)) AS events,
			(SELECT count(*) FROM syncd.webhook_nonces WHERE seen_at < now() - make_interval(secs => ?)) AS nonces`,
		projectID, before, before, webhook.NonceRetention.Seconds()).Row().Scan(&st.Events, &st.Nonces)
	if err != nil {
		return EventPruneStats{}, fmt.Errorf("state: count what to prune: %w", err)
	}
	return st, nil
}
