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

// DefaultLockCheck is how often a watched lock is re-checked; see Watch.
const DefaultLockCheck = time.Second

// LockHolder is the session holding a project lock, as far as
// pg_stat_activity lets this role see: without pg_read_all_stats, a session
// of another role shows its pid only.
type LockHolder struct {
	PID             int    // backend pid of the holding session
	ApplicationName string // syncd sets "syncd host=H pid=P"
	ClientAddr      string // empty for a Unix socket
	BackendStart    time.Time
}

// LockedError says who holds a project lock. PID is 0 when the holder let go
// between the attempt and the look-up.
type LockedError struct {
	ProjectID string
	LockHolder
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
	mu           sync.Mutex
	conn         *sql.Conn
	projectID    string
	key          int64
	pid          int
	backendStart time.Time
	log          *zap.Logger
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
	var ok bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil {
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
	return s.held(ctx, conn, projectID, key)
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
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, key); err != nil {
		// The lock may have been granted just as the wait was cancelled; only
		// ending the session guarantees it is not left held by a pooled
		// connection nobody knows about.
		discard(conn)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("crm: lock project %q: %w", projectID, context.Cause(ctx))
		}
		return nil, fmt.Errorf("crm: lock project %q: %w", projectID, err)
	}
	return s.held(ctx, conn, projectID, key)
}

// held wraps conn, whose session has just taken the lock, as a Lock that
// knows its session by pid and backend_start (pids are reused).
func (s *Store) held(ctx context.Context, conn *sql.Conn, projectID string, key int64) (*Lock, error) {
	l := &Lock{conn: conn, projectID: projectID, key: key, log: s.log}
	if err := conn.QueryRowContext(ctx, `SELECT pid, backend_start FROM pg_stat_activity
		WHERE pid = pg_backend_pid()`).Scan(&l.pid, &l.backendStart); err != nil {
		discard(conn) // takes the lock with it
		return nil, fmt.Errorf("crm: lock project %q: identify the session: %w", projectID, err)
	}
	s.log.Debug("project lock taken", zap.String("project", projectID), zap.Int("backend_pid", l.pid))
	return l, nil
}

// ProjectID is the project this lock is for.
func (l *Lock) ProjectID() string { return l.projectID }

// BackendPID is the PostgreSQL backend pid of the session holding the lock,
// the pid other runners see in their *LockedError.
func (l *Lock) BackendPID() int { return l.pid }

// BackendStart is when the lock's session started; with BackendPID it names
// the session even after its pid is reused.
func (l *Lock) BackendStart() time.Time { return l.backendStart }

// Check confirms the lock is still held. A long run should call it before
// each step that must not overlap another runner: if the session died (a
// network cut, a server restart, pg_terminate_backend), the lock went with it
// and Check returns ErrLockLost.
func (l *Lock) Check(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.check(ctx)
}

// check is Check with l.mu held.
func (l *Lock) check(ctx context.Context) error {
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

// Watch re-checks the lock on its own session every interval, which also
// keeps that session from going idle (idle_session_timeout, a NAT dropping
// idle connections). The returned context is ctx, cancelled with a cause
// matching ErrLockLost as soon as a check fails, or no check has confirmed
// the lock for 2 × every (a check that hangs on a network cut): from then on
// another runner may hold the lock, so work that must not overlap another
// runner's has to stop. Either way the loss is noticed within 2 × every of
// it, while a check slowed by a loaded server has at least every to answer.
// every <= 0 means DefaultLockCheck.
//
// The CancelFunc ends the watch, waits for it and cancels the context; call
// it before Release.
func (l *Lock) Watch(ctx context.Context, every time.Duration) (context.Context, context.CancelFunc) {
	if every <= 0 {
		every = DefaultLockCheck
	}
	watched, lose := context.WithCancelCause(ctx)
	quit, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		// When the last check that confirmed the lock was sent: the lock
		// was held then, so the lease runs from there.
		confirmed := time.Now()
		for {
			select {
			case <-quit.Done():
				return
			case <-tick.C:
			}
			sent := time.Now()
			if err := l.checkBy(quit, confirmed.Add(2*every)); err != nil {
				if quit.Err() != nil {
					return // stopped, or the caller's context ended: not a loss
				}
				l.log.Warn("project lock lost: stopping the run", zap.String("project", l.projectID),
					zap.Int("backend_pid", l.pid), zap.Error(err))
				lose(err)
				return
			}
			confirmed = sent
		}
	}()
	return watched, func() {
		stop()
		<-done
		lose(context.Canceled)
	}
}

// checkBy is Check, failing with ErrLockLost when no answer came by
// deadline. It returns only once the check has, since the session is not
// safe to share before; the verdict is given on time all the same.
func (l *Lock) checkBy(ctx context.Context, deadline time.Time) error {
	cctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	res := make(chan error, 1)
	go func() { res <- l.Check(cctx) }()
	var err error
	select {
	case err = <-res:
	case <-cctx.Done():
		if ctx.Err() == nil {
			err = fmt.Errorf("%w: project %q: its session did not answer a check before %s",
				ErrLockLost, l.projectID, deadline.Format(time.RFC3339Nano))
		} else {
			err = ctx.Err()
		}
		<-res
	}
	if err != nil && ctx.Err() == nil && !errors.Is(err, ErrLockLost) {
		err = fmt.Errorf("%w: project %q: %w", ErrLockLost, l.projectID, err)
	}
	return err
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

// LockHolder says which session holds the project lock, without taking it
// (which would make a runner that tries at that moment find it locked);
// false when nobody holds it.
func (s *Store) LockHolder(ctx context.Context, projectID string) (LockHolder, bool, error) {
	e, err := lockHolder(ctx, s.db, projectID, LockKey(projectID))
	if err != nil {
		return LockHolder{}, false, fmt.Errorf("crm: who holds the lock of project %q: %w", projectID, err)
	}
	return e.LockHolder, e.PID != 0, nil
}

// SessionAlive reports whether the session (pid, backendStart) still exists.
// A session of another role whose backend_start this role may not see
// counts as alive when its pid exists: it might be that session.
func (s *Store) SessionAlive(ctx context.Context, pid int, backendStart time.Time) (bool, error) {
	var alive bool
	if err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
		WHERE pid = $1 AND (backend_start = $2 OR backend_start IS NULL))`, pid, backendStart).Scan(&alive); err != nil {
		return false, fmt.Errorf("crm: look up session %d: %w", pid, err)
	}
	return alive, nil
}

// rowQuerier is a pool or one of its connections.
type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func lockHolder(ctx context.Context, q rowQuerier, projectID string, key int64) (*LockedError, error) {
	e := &LockedError{ProjectID: projectID}
	classID, objID := splitKey(key)
	var start sql.NullTime
	err := q.QueryRowContext(ctx, `SELECT a.pid, COALESCE(a.application_name, ''),
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
