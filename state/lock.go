package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/syncd/syncd/lease"
)

// Lock is a held project lock: a lease (see package lease) on a session of
// its own, which only one runner of a Sinch project holds at a time across
// processes and hosts, and under which runs start.
type Lock struct {
	*lease.Lease
	projectID string
}

// ProjectKey is the advisory lock key of a project: FNV-1a (64-bit) of
// "syncd:"+projectID. Every syncd version must compute the same key or two
// of them could run side by side; it shows in pg_locks as
// classid = key>>32, objid = key&0xffffffff, objsubid = 1.
func ProjectKey(projectID string) lease.Key { return lease.Named("syncd:" + projectID) }

func lockName(projectID string) string { return fmt.Sprintf("project %q", projectID) }

// TryLock takes the project lock if it is free; otherwise it returns a
// *lease.HeldError, which matches lease.ErrHeld, naming the holder.
func (s *Store) TryLock(ctx context.Context, projectID string) (*Lock, error) {
	l, err := lease.TryAcquire(ctx, s.db, ProjectKey(projectID), lockName(projectID), s.log)
	if err != nil {
		return nil, err
	}
	return &Lock{Lease: l, projectID: projectID}, nil
}

// Lock waits for the project lock until it is free or ctx ends. While it
// waits it logs who holds it.
func (s *Store) Lock(ctx context.Context, projectID string) (*Lock, error) {
	l, err := lease.Acquire(ctx, s.db, ProjectKey(projectID), lockName(projectID), s.log)
	if err != nil {
		return nil, err
	}
	return &Lock{Lease: l, projectID: projectID}, nil
}

// ProjectID is the project this lock is for.
func (l *Lock) ProjectID() string { return l.projectID }

// StartRun records the start of a run under this lock, on the lock's own
// session: the row names that session, which lets a later runner that finds
// the run still "running" tell whether it may be alive, and the row is
// written only while the session still holds the lock (lease.ErrLost if
// not).
func (l *Lock) StartRun(ctx context.Context, kind RunKind) (Run, error) {
	var r Run
	err := l.Do(ctx, func(conn *sql.Conn) error {
		var err error
		r, err = startRun(ctx, conn, l.projectID, kind, l.Key())
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return Run{}, fmt.Errorf("state: start run: %w: %s", lease.ErrLost, l.Name())
	}
	if err != nil {
		return Run{}, fmt.Errorf("state: start run: %w", err)
	}
	return r, nil
}

// LockHolder says which session holds the project lock, without taking it
// (which would make a runner that tries at that moment find it locked);
// false when nobody holds it.
func (s *Store) LockHolder(ctx context.Context, projectID string) (lease.Holder, bool, error) {
	return lease.HolderOf(ctx, s.db, ProjectKey(projectID))
}

// SessionAlive reports whether the session (pid, backendStart) still exists.
// A session of another role whose backend_start this role may not see
// counts as alive when its pid exists: it might be that session.
func (s *Store) SessionAlive(ctx context.Context, pid int, backendStart time.Time) (bool, error) {
	return lease.SessionAlive(ctx, s.db, pid, backendStart)
}

// startRun inserts the run on the lock's session, naming that session, and
// inserts nothing (sql.ErrNoRows) unless it holds key. It is SQL by hand:
// it runs on the lock's own connection, outside gorm's pool, and checks
// pg_locks in the same statement.
func startRun(ctx context.Context, conn *sql.Conn, projectID string, kind RunKind, key lease.Key) (Run, error) {
	host, _ := os.Hostname()
	r := Run{ProjectID: projectID, Kind: kind, Outcome: OutcomeRunning, Host: host, PID: os.Getpid(),
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
		append([]any{projectID, kind, OutcomeRunning, host, r.PID, r.PIDNamespace}, args...)...).
		Scan(&r.ID, &r.StartedAt, &r.LockPID, &lockStart)
	if err != nil {
		return Run{}, err
	}
	r.LockBackendStart = lockStart.Time
	return r, nil
}

// FullRunKey is the advisory lock key that keeps a project to one full run
// at a time: FNV-1a (64-bit) of "syncd:full:"+projectID. A full run holds it
// for as long as it runs, and the project lock only while it writes, so
// that partial runs go on while it reads.
func FullRunKey(projectID string) lease.Key { return lease.Named("syncd:full:" + projectID) }

func fullRunName(projectID string) string { return fmt.Sprintf("full run of project %q", projectID) }

// TryLockFullRun takes the full-run lock of the project if it is free;
// otherwise a *lease.HeldError naming the holder.
func (s *Store) TryLockFullRun(ctx context.Context, projectID string) (*Lock, error) {
	l, err := lease.TryAcquire(ctx, s.db, FullRunKey(projectID), fullRunName(projectID), s.log)
	if err != nil {
		return nil, err
	}
	return &Lock{Lease: l, projectID: projectID}, nil
}

// LockFullRun waits for the full-run lock of the project.
func (s *Store) LockFullRun(ctx context.Context, projectID string) (*Lock, error) {
	l, err := lease.Acquire(ctx, s.db, FullRunKey(projectID), fullRunName(projectID), s.log)
	if err != nil {
		return nil, err
	}
	return &Lock{Lease: l, projectID: projectID}, nil
}

// FullRunHolder says which session runs a full run of the project now.
func (s *Store) FullRunHolder(ctx context.Context, projectID string) (lease.Holder, bool, error) {
	return lease.HolderOf(ctx, s.db, FullRunKey(projectID))
}

// LockSession opens a session kept for taking the project lock again and
// again (LockOn): a full run's, for its batches of writes.
func (s *Store) LockSession(ctx context.Context) (*lease.Session, error) {
	return lease.Open(ctx, s.db)
}

// LockOn waits for the project lock and takes it on sess; its Release
// keeps sess for the next time.
func (s *Store) LockOn(ctx context.Context, sess *lease.Session, projectID string) (*Lock, error) {
	l, err := lease.AcquireOn(ctx, sess, ProjectKey(projectID), lockName(projectID), s.log)
	if err != nil {
		return nil, err
	}
	return &Lock{Lease: l, projectID: projectID}, nil
}
