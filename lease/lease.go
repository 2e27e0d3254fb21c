// Package lease is syncd's one implementation of PostgreSQL advisory locks,
// held as leases. A lock is taken on a session of its own, outside the pool
// (Session), and lasts as long as that session, so a holder that crashes or
// is cut off frees it without anyone's help. Holding a lock proves nothing
// a moment later, so whoever holds one re-checks it on its session and
// steps down once it is gone: a Lease by Watch, the leader elector at each
// of its checks.
//
// The project lock (state.Lock), which lets only one runner sync a Sinch
// project at a time, is a Lease on a session of its own; the leader
// elector (package leader) holds its member lock and its leader locks on
// one Session per process.
package lease

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// ErrHeld is matched (errors.Is) by the *HeldError that TryAcquire returns
// when another session holds the lock.
var ErrHeld = errors.New("lease: held by another session")

// ErrLost reports that a lease's session has ended or no longer holds the
// lock, so another session may already have taken it.
var ErrLost = errors.New("lease: lost")

// DefaultCheck is how often a watched lease is re-checked; see Watch.
const DefaultCheck = time.Second

// Lease is a lock held on a session of its own, or on a session kept for
// taking one lock again and again (AcquireOn).
type Lease struct {
	s    *Session
	key  Key
	name string
	log  *zap.Logger
	kept bool // the session outlives the lease (AcquireOn)
}

// TryAcquire takes key on a session of its own if no other session holds
// it; otherwise it returns a *HeldError, which matches ErrHeld, naming the
// holder. name says what the lock is for, in errors and logs.
func TryAcquire(ctx context.Context, db *sql.DB, key Key, name string, log *zap.Logger) (*Lease, error) {
	s, err := Open(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("lease: take %s: %w", name, err)
	}
	ok, err := s.TryLock(ctx, key)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("lease: take %s: %w", name, err)
	}
	if !ok {
		held := &HeldError{Name: name}
		err := s.Do(ctx, func(conn *sql.Conn) error {
			var err error
			held.Holder, _, err = HolderOf(ctx, conn, key)
			return err
		})
		s.Close() // holds nothing: back to the pool
		if err != nil {
			logger(log).Debug("cannot identify the holder of a lock", zap.String("lock", name), zap.Error(err))
		}
		return nil, held
	}
	return newLease(s, key, name, log), nil
}

// Acquire waits until key is free and takes it on a session of its own, or
// until ctx ends. While it waits it logs who holds it.
func Acquire(ctx context.Context, db *sql.DB, key Key, name string, log *zap.Logger) (*Lease, error) {
	l, err := TryAcquire(ctx, db, key, name, log)
	var held *HeldError
	if !errors.As(err, &held) {
		return l, err
	}
	logger(log).Info("waiting for a lock", zap.String("lock", name), zap.Int("holder_pid", held.PID),
		zap.String("holder_application", held.ApplicationName), zap.String("holder_client", held.ClientAddr))
	s, err := Open(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("lease: take %s: %w", name, err)
	}
	if err := s.Lock(ctx, key); err != nil {
		s.Close() // a lock granted just as the wait was cancelled goes with the session
		if ctx.Err() != nil {
			return nil, fmt.Errorf("lease: take %s: %w", name, context.Cause(ctx))
		}
		return nil, fmt.Errorf("lease: take %s: %w", name, err)
	}
	return newLease(s, key, name, log), nil
}

// AcquireOn waits until key is free and takes it on s, a session kept for
// taking it again and again (a full run takes the project lock for each
// batch of its writes, without a connection of its own each time). Its
// Release lets go of key and keeps s, unless the unlock fails; a wait cut
// short by ctx ends s, since the lock may have been granted just then.
func AcquireOn(ctx context.Context, s *Session, key Key, name string, log *zap.Logger) (*Lease, error) {
	if err := s.Lock(ctx, key); err != nil {
		s.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("lease: take %s: %w", name, context.Cause(ctx))
		}
		return nil, fmt.Errorf("lease: take %s: %w", name, err)
	}
	l := newLease(s, key, name, log)
	l.kept = true
	return l, nil
}

func newLease(s *Session, key Key, name string, log *zap.Logger) *Lease {
	l := &Lease{s: s, key: key, name: name, log: logger(log)}
	l.log.Debug("lock taken", zap.String("lock", name), zap.Int("backend_pid", s.PID()))
	return l
}

func logger(log *zap.Logger) *zap.Logger {
	if log == nil {
		return zap.NewNop()
	}
	return log
}

// Name is what the lock is for.
func (l *Lease) Name() string { return l.name }

// Key is the lock's key.
func (l *Lease) Key() Key { return l.key }

// BackendPID is the PostgreSQL backend pid of the session holding the
// lock, the pid others see in their *HeldError.
func (l *Lease) BackendPID() int { return l.s.PID() }

// BackendStart is when the lease's session started; with BackendPID it
// names the session even after its pid is reused.
func (l *Lease) BackendStart() time.Time { return l.s.BackendStart() }

// Check confirms the lock is still held. Work that must not overlap another
// holder's calls it before each step: if the session died (a network cut, a
// server restart, pg_terminate_backend), the lock went with it and Check
// returns ErrLost.
func (l *Lease) Check(ctx context.Context) error {
	held, err := l.s.Held(ctx)
	switch {
	case errors.Is(err, errClosed):
		return fmt.Errorf("%w: %s: already released", ErrLost, l.name)
	case err != nil && ctx.Err() != nil:
		return fmt.Errorf("lease: check %s: %w", l.name, context.Cause(ctx))
	case err != nil:
		return fmt.Errorf("%w: %s: %v", ErrLost, l.name, err)
	case !held[l.key]:
		return fmt.Errorf("%w: %s", ErrLost, l.name)
	}
	return nil
}

// Do runs fn on the lease's session, alone, for a statement that must run
// where the lock is held (one that checks pg_locks for it, say). If fn
// fails and the lock is gone meanwhile, which a failed statement may mean,
// the error is Check's, matching ErrLost.
func (l *Lease) Do(ctx context.Context, fn func(conn *sql.Conn) error) error {
	err := l.s.Do(ctx, fn)
	if errors.Is(err, errClosed) {
		return fmt.Errorf("%w: %s: already released", ErrLost, l.name)
	}
	if err != nil {
		if cerr := l.Check(ctx); cerr != nil {
			return cerr
		}
	}
	return err
}

// Watch re-checks the lease on its own session every interval, which also
// keeps that session from going idle (idle_session_timeout, a NAT dropping
// idle connections). The returned context is ctx, cancelled with a cause
// matching ErrLost as soon as a check fails, or no check has confirmed
// the lock for 2 × every (a check that hangs on a network cut): from then on
// another session may hold the lock, so work that must not overlap another
// holder's has to stop. Either way the loss is noticed within 2 × every of
// it, while a check slowed by a loaded server has at least every to answer.
// every <= 0 means DefaultCheck.
//
// The CancelFunc ends the watch, waits for it and cancels the context; call
// it before Release.
func (l *Lease) Watch(ctx context.Context, every time.Duration) (context.Context, context.CancelFunc) {
	if every <= 0 {
		every = DefaultCheck
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
				l.log.Warn("lock lost: stopping what needed it", zap.String("lock", l.name),
					zap.Int("backend_pid", l.BackendPID()), zap.Error(err))
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

// checkBy is Check, failing with ErrLost when no answer came by deadline.
// It returns only once the check has, since the session is not safe to
// share before; the verdict is given on time all the same.
func (l *Lease) checkBy(ctx context.Context, deadline time.Time) error {
	cctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	res := make(chan error, 1)
	go func() { res <- l.Check(cctx) }()
	var err error
	select {
	case err = <-res:
	case <-cctx.Done():
		if ctx.Err() == nil {
			err = fmt.Errorf("%w: %s: its session did not answer a check before %s",
				ErrLost, l.name, deadline.Format(time.RFC3339Nano))
		} else {
			err = ctx.Err()
		}
		<-res
	}
	if err != nil && ctx.Err() == nil && !errors.Is(err, ErrLost) {
		err = fmt.Errorf("%w: %s: %w", ErrLost, l.name, err)
	}
	return err
}

// Release unlocks and ends the lease's session (keeps it, for a lease
// taken by AcquireOn). Ending the session is what guarantees the lock is
// gone even if the unlock itself failed. Releasing twice is a no-op.
func (l *Lease) Release(ctx context.Context) error {
	if !l.kept {
		defer l.s.Close()
	}
	unlocked, err := l.s.Unlock(ctx, l.key)
	switch {
	case errors.Is(err, errClosed):
		return nil
	case err != nil:
		l.log.Warn("unlock failed, closing its session instead", zap.String("lock", l.name), zap.Error(err))
		l.s.Close()
		return nil
	case !unlocked:
		return fmt.Errorf("%w: %s: not held at release", ErrLost, l.name)
	}
	l.log.Debug("lock released", zap.String("lock", l.name))
	return nil
}
