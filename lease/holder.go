package lease

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Holder is a session holding a lock, as far as pg_stat_activity lets this
// role see: without pg_read_all_stats, a session of another role shows its
// pid only.
type Holder struct {
	PID             int    // backend pid of the holding session
	ApplicationName string // syncd sets "syncd host=H pid=P"
	ClientAddr      string // empty for a Unix socket
	BackendStart    time.Time
}

// HeldError says who holds a lock that could not be taken. PID is 0 when
// the holder let go between the attempt and the look-up. It matches
// ErrHeld.
type HeldError struct {
	Name string // what the lock is for, as given to TryAcquire
	Holder
}

func (e *HeldError) Error() string {
	if e.PID == 0 {
		return fmt.Sprintf("lease: %s is locked by another session", e.Name)
	}
	return fmt.Sprintf("lease: %s is locked by backend pid %d (application %q, client %q, connected %s)",
		e.Name, e.PID, e.ApplicationName, e.ClientAddr, e.BackendStart.Format(time.RFC3339))
}

func (e *HeldError) Is(target error) bool { return target == ErrHeld }

// Querier is the pool, or one session of it (Session.Do).
type Querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// HolderOf says which session holds key, without taking it (which would
// make whoever tries at that moment find it held); false when none does.
func HolderOf(ctx context.Context, q Querier, key Key) (Holder, bool, error) {
	var h Holder
	var start sql.NullTime
	where, args := key.Where(1)
	err := q.QueryRowContext(ctx, `SELECT a.pid, COALESCE(a.application_name, ''),
			COALESCE(host(a.client_addr), ''), a.backend_start
		FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE `+where+` AND l.granted
			AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		LIMIT 1`, args...).Scan(&h.PID, &h.ApplicationName, &h.ClientAddr, &start)
	if errors.Is(err, sql.ErrNoRows) {
		return Holder{}, false, nil
	}
	if err != nil {
		return Holder{}, false, fmt.Errorf("lease: who holds %s: %w", key, err)
	}
	h.BackendStart = start.Time
	return h, true, nil
}

// SessionAlive reports whether the session (pid, backendStart) still
// exists. A session of another role whose backend_start this role may not
// see counts as alive when its pid exists: it might be that session.
func SessionAlive(ctx context.Context, q Querier, pid int, backendStart time.Time) (bool, error) {
	var alive bool
	if err := q.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
		WHERE pid = $1 AND (backend_start = $2 OR backend_start IS NULL))`, pid, backendStart).Scan(&alive); err != nil {
		return false, fmt.Errorf("lease: look up session %d: %w", pid, err)
	}
	return alive, nil
}

// Holding is a session and the advisory keys it holds.
type Holding struct {
	Holder
	Keys []Key
}

// InSpace lists the sessions of this database that hold a key of space
// (see Pair), oldest first, each with every advisory key it holds, in one
// statement.
func InSpace(ctx context.Context, q Querier, space int32) ([]Holding, error) {
	rows, err := q.QueryContext(ctx, `SELECT l.pid, l.classid::int8, l.objid::int8, l.objsubid,
			COALESCE(a.application_name, ''), COALESCE(host(a.client_addr), ''), a.backend_start
		FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted
			AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
			AND l.pid IN (SELECT pid FROM pg_locks
				WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND classid = $1::int8::oid)
		ORDER BY a.backend_start, l.pid`, int64(uint32(space)))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Holding
	for rows.Next() {
		var h Holder
		var classID, objID int64
		var sub int
		var start sql.NullTime
		if err := rows.Scan(&h.PID, &classID, &objID, &sub, &h.ApplicationName, &h.ClientAddr, &start); err != nil {
			return nil, err
		}
		h.BackendStart = start.Time
		if n := len(out); n == 0 || out[n-1].PID != h.PID {
			out = append(out, Holding{Holder: h})
		}
		last := &out[len(out)-1]
		last.Keys = append(last.Keys, keyOf(classID, objID, sub))
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// Holds reports whether the holding includes key.
func (h Holding) Holds(key Key) bool { return slices.Contains(h.Keys, key) }
