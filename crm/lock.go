package crm

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"go.uber.org/zap"
)

// ErrLocked is matched (errors.Is) by the *LockedError that TryLock returns
// when another session holds the project lock.
var ErrLocked = errors.New("crm: project locked by another session")

// ErrLockLost reports that a Lock's session has ended or no longer holds the
// lock, so another runner may already have taken it.
var ErrLockLost = errors.New("crm: project lock lost")

// LockedError says who holds a project lock, as far as pg_stat_activity lets
// this role see: without pg_read_all_stats, a session of another role shows
// its pid only. PID is 0 when the holder let go between the attempt and the
// look-up.
type LockedError struct {
	ProjectID       string
	PID             int    // backend pid of the holding session
	ApplicationName string // syncd sets "syncd host=H pid=P"
	ClientAddr      string // empty for a Unix socket
	BackendStart    time.Time
}

func (e *LockedError) Error() string {
	if e.PID == 0 {
		return fmt.Sprintf("crm: project %q is locked by another session", e.ProjectID)
	}
	return fmt.Sprintf("crm: project %q is locked by backend pid %d (application %q, client %q, connected %s)",
		e.ProjectID, e.PID, e.ApplicationName, e.ClientAddr, e.BackendStart.Format(time.RFC3339))
}

func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// Lock is a held project lock: a PostgreSQL session-level advisory lock on a
// connection of its own. It lasts as long as that session, so a crashed or
// partitioned holder frees it without anyone's help.
type Lock struct {
	mu        sync.Mutex
	conn      *sql.Conn
	projectID string
	key       int64
	pid       int
	log       *zap.Logger
}

// LockKey is the advisory lock key of a project: FNV-1a (64-bit) of
// "syncd:"+projectID. Every syncd version must compute the same key or two
// of them could run side by side; it shows in pg_locks as
// classid = key>>32, objid = key&0xffffffff, objsubid = 1.
func LockKey(projectID string) int64 { return advisoryKey("syncd:" + projectID) }

func advisoryKey(s string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(s))
	return int64(h.Sum64())
}

// TryLock takes the project lock if it is free; otherwise it returns a
// *LockedError, which matches ErrLocked, naming the holder.
func (s *Store) TryLock(ctx context.Context, projectID string) (*Lock, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("crm: lock project %q: %w", projectID, err)
	}
	key := LockKey(projectID)
	var (
		ok  bool
		pid int
	)
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1), pg_backend_pid()`, key).Scan(&ok, &pid); err != nil {
		discard(conn)
		return nil, fmt.Errorf("crm: lock project %q: %w", projectID, err)
	}
	if !ok {
		holder, herr := lockHolder(ctx, conn, projectID, key)
		_ = conn.Close() // holds nothing: back to the pool
		if herr != nil {
			s.log.Debug("cannot identify lock holder", zap.String("project", projectID), zap.Error(herr))
		}
		return nil, holder
	}
	s.log.Debug("project lock taken", zap.String("project", projectID), zap.Int("backend_pid", pid))
	return &Lock{conn: conn, projectID: projectID, key: key, pid: pid, log: s.log}, nil
}

// Lock waits for the project lock until it is free or ctx ends. While it
// waits it logs who holds it.
func (s *Store) Lock(ctx context.Context, projectID string) (*Lock, error) {
	l, err := s.TryLock(ctx, projectID)
	var locked *LockedError
	if !errors.As(err, &locked) {
		return l, err
	}
	s.log.Info("waiting for project lock", zap.String("project", projectID), zap.Int("holder_pid", locked.PID),
		zap.String("holder_application", locked.ApplicationName), zap.String("holder_client", locked.ClientAddr))

	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("crm: lock project %q: %w", projectID, err)
	}
	key := LockKey(projectID)
	var pid int
	err = conn.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid)
	if err == nil {
		_, err = conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, key)
	}
	if err != nil {
		// The lock may have been granted just as the wait was cancelled; only
		// ending the session guarantees it is not left held by a pooled
		// connection nobody knows about.
		discard(conn)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("crm: lock project %q: %w", projectID, context.Cause(ctx))
		}
		return nil, fmt.Errorf("crm: lock project %q: %w", projectID, err)
	}
	s.log.Debug("project lock taken", zap.String("project", projectID), zap.Int("backend_pid", pid))
	return &Lock{conn: conn, projectID: projectID, key: key, pid: pid, log: s.log}, nil
}

// ProjectID is the project this lock is for.
func (l *Lock) ProjectID() string { return l.projectID }

// BackendPID is the PostgreSQL backend pid of the session holding the lock,
// the pid other runners see in their *LockedError.
func (l *Lock) BackendPID() int { return l.pid }

// Check confirms the lock is still held. A long run should call it before
// each step that must not overlap another runner: if the session died (a
// network cut, a server restart, pg_terminate_backend), the lock went with it
// and Check returns ErrLockLost.
func (l *Lock) Check(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return fmt.Errorf("%w: project %q: already released", ErrLockLost, l.projectID)
	}
	classID, objID := splitKey(l.key)
	var held bool
	err := l.conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks
		WHERE pid = pg_backend_pid() AND locktype = 'advisory' AND granted
			AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 1)`,
		classID, objID).Scan(&held)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("crm: check project lock %q: %w", l.projectID, context.Cause(ctx))
		}
		return fmt.Errorf("%w: project %q: %v", ErrLockLost, l.projectID, err)
	}
	if !held {
		return fmt.Errorf("%w: project %q", ErrLockLost, l.projectID)
	}
	return nil
}

// Release unlocks and ends the lock's session. Ending the session is what
// guarantees the lock is gone even if the unlock itself failed, and keeps a
// session that held it out of the pool. Releasing twice is a no-op.
func (l *Lock) Release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return nil
	}
	conn := l.conn
	l.conn = nil
	defer discard(conn)
	var unlocked bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_advisory_unlock($1)`, l.key).Scan(&unlocked); err != nil {
		l.log.Warn("project lock: unlock failed, closing its session instead",
			zap.String("project", l.projectID), zap.Error(err))
		return nil
	}
	if !unlocked {
		return fmt.Errorf("%w: project %q: not held at release", ErrLockLost, l.projectID)
	}
	l.log.Debug("project lock released", zap.String("project", l.projectID))
	return nil
}

func lockHolder(ctx context.Context, conn *sql.Conn, projectID string, key int64) (*LockedError, error) {
	e := &LockedError{ProjectID: projectID}
	classID, objID := splitKey(key)
	var start sql.NullTime
	err := conn.QueryRowContext(ctx, `SELECT a.pid, COALESCE(a.application_name, ''),
			COALESCE(host(a.client_addr), ''), a.backend_start
		FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted
			AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
			AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid AND l.objsubid = 1
		LIMIT 1`, classID, objID).Scan(&e.PID, &e.ApplicationName, &e.ClientAddr, &start)
	if errors.Is(err, sql.ErrNoRows) {
		return e, nil
	}
	e.BackendStart = start.Time
	return e, err
}

// splitKey gives the two 32-bit halves under which pg_locks shows a bigint
// advisory key.
func splitKey(key int64) (classID, objID int64) {
	u := uint64(key)
	return int64(u >> 32), int64(u & 0xffffffff)
}

// discard ends conn's session instead of returning it to the pool.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close()
}
