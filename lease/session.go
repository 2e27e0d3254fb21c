package lease

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	stdsync "sync"
	"time"
)

// Session is a PostgreSQL session of its own, taken out of the pool, on
// which advisory locks are held. Its statements run one at a time, so it is
// safe for concurrent use. Close ends the session, which frees every lock
// it holds even when an unlock failed, and keeps a session that held locks
// out of the pool.
type Session struct {
	mu    stdsync.Mutex
	conn  *sql.Conn // nil once closed
	pid   int
	start time.Time
	// tainted: a lock may have been taken on the session, so it must end
	// rather than go back to the pool.
	tainted bool
}

// Open takes a session of its own from db and says which it is (pid and
// backend_start: pids are reused).
func Open(ctx context.Context, db *sql.DB) (*Session, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("lease: open a session: %w", err)
	}
	s := &Session{conn: conn}
	if err := conn.QueryRowContext(ctx, `SELECT pid, backend_start FROM pg_stat_activity
		WHERE pid = pg_backend_pid()`).Scan(&s.pid, &s.start); err != nil {
		discard(conn)
		return nil, fmt.Errorf("lease: identify the session: %w", err)
	}
	return s, nil
}

// PID is the session's backend pid, the one other sessions see in
// pg_locks and pg_stat_activity.
func (s *Session) PID() int { return s.pid }

// BackendStart is when the session started; with PID it names the session
// even after its pid is reused.
func (s *Session) BackendStart() time.Time { return s.start }

// errClosed is what a closed session answers.
var errClosed = errors.New("the session is closed")

// Do runs fn on the session, alone. fn must not keep conn.
func (s *Session) Do(ctx context.Context, fn func(conn *sql.Conn) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return errClosed
	}
	return fn(s.conn)
}

// TryLock takes key on the session if no other session holds it.
func (s *Session) TryLock(ctx context.Context, key Key) (bool, error) {
	var ok bool
	err := s.Do(ctx, func(conn *sql.Conn) error {
		was := s.tainted
		s.tainted = true // until the answer says otherwise
		q, args := key.call("pg_try_advisory_lock")
		if err := conn.QueryRowContext(ctx, q, args...).Scan(&ok); err != nil {
			return err
		}
		s.tainted = was || ok
		return nil
	})
	return ok, err
}

// Lock waits until the session holds key or ctx ends. When it fails, the
// lock may have been granted just as the wait was cancelled: only closing
// the session then makes sure it is not left held.
func (s *Session) Lock(ctx context.Context, key Key) error {
	return s.Do(ctx, func(conn *sql.Conn) error {
		s.tainted = true
		q, args := key.call("pg_advisory_lock")
		_, err := conn.ExecContext(ctx, q, args...)
		return err
	})
}

// Unlock lets go of key; false when the session did not hold it.
func (s *Session) Unlock(ctx context.Context, key Key) (bool, error) {
	var ok bool
	err := s.Do(ctx, func(conn *sql.Conn) error {
		q, args := key.call("pg_advisory_unlock")
		return conn.QueryRowContext(ctx, q, args...).Scan(&ok)
	})
	return ok, err
}

// Held reads the advisory keys the session holds. Holding a lock once
// proves nothing later: a session can end (a network cut, a server
// restart, pg_terminate_backend) and its locks with it, so whoever acts
// under a lock reads this again before what must not overlap another
// holder.
func (s *Session) Held(ctx context.Context) (map[Key]bool, error) {
	held := map[Key]bool{}
	err := s.Do(ctx, func(conn *sql.Conn) error {
		rows, err := conn.QueryContext(ctx, `SELECT classid::int8, objid::int8, objsubid FROM pg_locks
			WHERE pid = pg_backend_pid() AND locktype = 'advisory' AND granted`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var classID, objID int64
			var sub int
			if err := rows.Scan(&classID, &objID, &sub); err != nil {
				return err
			}
			held[keyOf(classID, objID, sub)] = true
		}
		return rows.Err()
	})
	return held, err
}

// Closed says whether the session has ended (Close, or a wait for a lock
// cut short).
func (s *Session) Closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn == nil
}

// Close ends the session, and with it every lock it holds; a session that
// never held one goes back to the pool. Closing twice is a no-op.
func (s *Session) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return
	}
	if s.tainted {
		discard(s.conn)
	} else {
		_ = s.conn.Close()
	}
	s.conn = nil
}

// discard ends conn's session instead of returning it to the pool.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close()
}
