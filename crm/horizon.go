package crm

import (
	"context"
	"fmt"
	"time"
)

// ReadHorizon is the latest point an incremental run may record as read up
// to, and the server's clock: the horizon is the clock held back to the
// start of the oldest transaction open in this database, whether or not it
// has written anything yet. updated_at = now() stamps a row with its
// transaction's start, so a transaction that is still open can commit rows
// stamped as early as its own start, however long it first spent reading;
// a watermark past that would skip them for good. syncd's own read-only
// transactions are left out (a full run's read holds one open for as long
// as it reads): they write no CRM row.
//
// pg_stat_activity shows other roles' transactions only to members of
// pg_read_all_stats: give that role to syncd's user when CRM writers use
// another one (SPEC §2, and the README's permissions).
func (s *Reader) ReadHorizon(ctx context.Context) (horizon, now time.Time, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT LEAST(now(), COALESCE(
			(SELECT min(xact_start) FROM pg_stat_activity
			 WHERE datname = current_database() AND xact_start IS NOT NULL AND pid <> pg_backend_pid()
			   AND NOT (application_name LIKE 'syncd %' AND backend_xid IS NULL)),
			now())), now()`).Scan(&horizon, &now)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("crm: read the incremental horizon: %w", err)
	}
	return horizon, now, nil
}
