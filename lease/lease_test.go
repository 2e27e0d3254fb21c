package lease_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/syncd/syncd/lease"
	"github.com/syncd/syncd/state/statetest"
)

// Every Lease and Session a test takes must be let go of: a leaked pool
// shows up here as its connection-opener goroutine.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const proj = `project "proj"`

var key = lease.Named("syncd:proj")

// ctxFor bounds a test's database work so a wedged server fails the test
// rather than hanging the binary.
func ctxFor(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// pool is another pool on the database at url, as a second process would
// open it.
func pool(t *testing.T, url string) *sql.DB {
	t.Helper()
	return statetest.OpenStore(t, url).SQL()
}

// Two pools on one database stand for two syncd processes.
func twoPools(t *testing.T) (*sql.DB, *sql.DB) {
	t.Helper()
	url := statetest.NewDatabase(t)
	return pool(t, url), pool(t, url)
}

func tryAcquire(t *testing.T, db *sql.DB, k lease.Key, name string) (*lease.Lease, error) {
	t.Helper()
	return lease.TryAcquire(ctxFor(t), db, k, name, zaptest.NewLogger(t))
}

func release(t *testing.T, l *lease.Lease) {
	t.Helper()
	if err := l.Release(ctxFor(t)); err != nil {
		t.Errorf("release: %v", err)
	}
}

func TestTryAcquireConflict(t *testing.T) {
	t.Parallel()
	a, b := twoPools(t)
	ctx := ctxFor(t)

	held, err := tryAcquire(t, a, key, proj)
	if err != nil {
		t.Fatal(err)
	}
	if err := held.Check(ctx); err != nil {
		t.Fatalf("Check on a held lease: %v", err)
	}

	_, err = tryAcquire(t, b, key, proj)
	if !errors.Is(err, lease.ErrHeld) {
		t.Fatalf("second TryAcquire: %v, want ErrHeld", err)
	}
	var locked *lease.HeldError
	if !errors.As(err, &locked) {
		t.Fatalf("%T is not a *HeldError", err)
	}
	if locked.Name != proj || locked.PID != held.BackendPID() ||
		!strings.HasPrefix(locked.ApplicationName, "syncd host=") || locked.BackendStart.IsZero() {
		t.Errorf("holder = %+v, want backend pid %d of a syncd session", locked, held.BackendPID())
	}
	if !strings.Contains(err.Error(), "locked by backend pid") {
		t.Errorf("error %q does not name the holder's backend", err)
	}

	// Locks are per key.
	other, err := tryAcquire(t, b, lease.Named("syncd:other"), `project "other"`)
	if err != nil {
		t.Fatalf("lease on another key: %v", err)
	}
	release(t, other)

	release(t, held)
	release(t, held) // twice is harmless
	if err := held.Check(ctx); !errors.Is(err, lease.ErrLost) {
		t.Errorf("Check after release = %v, want ErrLost", err)
	}
	taken, err := tryAcquire(t, b, key, proj)
	if err != nil {
		t.Fatalf("TryAcquire after release: %v", err)
	}
	release(t, taken)
}

// waitUntilWaiting polls pg_locks until a session is queued for key. It
// polls the server rather than sleeping: the wait ends as soon as the state
// is there.
func waitUntilWaiting(t *testing.T, db *sql.DB, k lease.Key, want bool) {
	t.Helper()
	for ctx := ctxFor(t); ctx.Err() == nil; {
		var waiting bool
		err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks
			WHERE locktype = 'advisory' AND NOT granted
				AND ((classid::bigint << 32) | objid::bigint) = $1)`, k.Int64()).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting == want {
			return
		}
	}
	t.Fatalf("no session ever %s for the lock", map[bool]string{true: "waited", false: "stopped waiting"}[want])
}

func TestAcquireWaitsForRelease(t *testing.T) {
	t.Parallel()
	a, b := twoPools(t)
	ctx := ctxFor(t)
	held, err := tryAcquire(t, a, key, proj)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	var waited *lease.Lease
	go func() {
		var err error
		waited, err = lease.Acquire(ctx, b, key, proj, nil)
		got <- err
	}()
	waitUntilWaiting(t, a, key, true)
	release(t, held)
	if err := <-got; err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	if err := waited.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	release(t, waited)
}

func TestAcquireIsCancellable(t *testing.T) {
	t.Parallel()
	a, b := twoPools(t)
	ctx := ctxFor(t)
	held, err := tryAcquire(t, a, key, proj)
	if err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithCancel(ctx)
	got := make(chan error, 1)
	go func() {
		l, err := lease.Acquire(waitCtx, b, key, proj, nil)
		if l != nil {
			_ = l.Release(context.Background())
		}
		got <- err
	}()
	waitUntilWaiting(t, a, key, true)
	cancel()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire after cancel: %v, want context.Canceled", err)
	}
	// The abandoned wait must not linger and take the lock later.
	waitUntilWaiting(t, a, key, false)
	release(t, held)
	l, err := tryAcquire(t, b, key, proj)
	if err != nil {
		t.Fatalf("TryAcquire after a cancelled wait: %v", err)
	}
	release(t, l)
}

// A session kept for one lock takes it again and again, lets others have it
// between times, and ends when a wait on it is cut short: the lock may have
// been granted just then.
func TestAcquireOnKeepsItsSession(t *testing.T) {
	t.Parallel()
	a, b := twoPools(t)
	ctx := ctxFor(t)
	s, err := lease.Open(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 3 {
		l, err := lease.AcquireOn(ctx, s, key, proj, nil)
		if err != nil {
			t.Fatalf("AcquireOn #%d: %v", i, err)
		}
		if l.BackendPID() != s.PID() {
			t.Fatalf("AcquireOn #%d took the lock on backend %d, want the kept session's %d", i, l.BackendPID(), s.PID())
		}
		if _, err := tryAcquire(t, b, key, proj); !errors.Is(err, lease.ErrHeld) {
			t.Fatalf("TryAcquire while held on the kept session = %v, want ErrHeld", err)
		}
		release(t, l)
		if s.Closed() {
			t.Fatalf("Release #%d closed the kept session", i)
		}
		other, err := tryAcquire(t, b, key, proj)
		if err != nil {
			t.Fatalf("TryAcquire between takes: %v", err)
		}
		if i < 2 {
			release(t, other)
			continue
		}
		waitCtx, cancel := context.WithCancel(ctx)
		got := make(chan error, 1)
		go func() {
			l, err := lease.AcquireOn(waitCtx, s, key, proj, nil)
			if l != nil {
				_ = l.Release(context.Background())
			}
			got <- err
		}()
		waitUntilWaiting(t, b, key, true)
		cancel()
		if err := <-got; !errors.Is(err, context.Canceled) {
			t.Fatalf("AcquireOn after cancel: %v, want context.Canceled", err)
		}
		if !s.Closed() {
			t.Fatal("a cancelled wait left the kept session open")
		}
		waitUntilWaiting(t, b, key, false)
		release(t, other)
	}
}

// terminate ends a backend as pg_terminate_backend does to a session whose
// server restarts or fails over; it returns once the backend is gone, and
// with it its locks.
func terminate(t *testing.T, db *sql.DB, pid int) {
	t.Helper()
	var ok bool
	if err := db.QueryRowContext(ctxFor(t), `SELECT pg_terminate_backend($1, 30000)`, pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminate backend %d: %v %v", pid, ok, err)
	}
}

// A holder that dies (crash, network cut, killed backend) must not keep the
// lock.
func TestLeaseDiesWithItsSession(t *testing.T) {
	t.Parallel()
	a, b := twoPools(t)
	ctx := ctxFor(t)
	held, err := tryAcquire(t, a, key, proj)
	if err != nil {
		t.Fatal(err)
	}
	terminate(t, b, held.BackendPID())
	if err := held.Check(ctx); !errors.Is(err, lease.ErrLost) {
		t.Errorf("Check on a dead session = %v, want ErrLost", err)
	}
	if err := held.Do(ctx, func(conn *sql.Conn) error {
		_, err := conn.ExecContext(ctx, `SELECT 1`)
		return err
	}); !errors.Is(err, lease.ErrLost) {
		t.Errorf("Do on a dead session = %v, want ErrLost", err)
	}
	taken, err := tryAcquire(t, b, key, proj)
	if err != nil {
		t.Fatalf("TryAcquire after the holder died: %v", err)
	}
	release(t, taken)
	_ = held.Release(ctx)
}

// lostWithin waits for a watched context to end and checks that it ended
// for a lost lease; it returns how long that took.
func lostWithin(t *testing.T, watched context.Context, from time.Time) time.Duration {
	t.Helper()
	select {
	case <-watched.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the watch never noticed the lost lease")
	}
	took := time.Since(from)
	if cause := context.Cause(watched); !errors.Is(cause, lease.ErrLost) {
		t.Errorf("watched context ended with %v, want a cause matching ErrLost", cause)
	}
	return took
}

// The watch notices a lease whose session was killed, and one whose session
// the server closed for idling longer than idle_session_timeout; and its
// checks are what keeps a session from idling that long.
func TestWatchStepsDown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		idleTimeout string // idle_session_timeout of the database; "" keeps the default (none)
		every       time.Duration
		kill        bool
		wantLost    bool
	}{
		{name: "terminated backend", every: 50 * time.Millisecond, kill: true, wantLost: true},
		{name: "idle timeout shorter than the checks", idleTimeout: "150ms", every: 600 * time.Millisecond, wantLost: true},
		{name: "checks keep the session from idling", idleTimeout: "1500ms", every: 400 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url := statetest.NewDatabase(t)
			admin := pool(t, url)
			ctx := ctxFor(t)
			if tc.idleTimeout != "" {
				if _, err := admin.ExecContext(ctx, `DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET idle_session_timeout = %L',
					current_database(), '`+tc.idleTimeout+`'); END $$`); err != nil {
					t.Fatal(err)
				}
			}
			holder := pool(t, url) // its sessions start with the database's settings
			held, err := tryAcquire(t, holder, key, proj)
			if err != nil {
				t.Fatal(err)
			}
			defer release(t, held)
			watched, stop := held.Watch(ctx, tc.every)
			defer stop()
			from := time.Now()
			if tc.kill {
				terminate(t, admin, held.BackendPID())
			}
			if tc.wantLost {
				t.Logf("stepped down %s after the loss was set off", lostWithin(t, watched, from).Round(time.Millisecond))
				if l, err := tryAcquire(t, admin, key, proj); err != nil {
					t.Errorf("TryAcquire after the holder stepped down: %v", err)
				} else {
					release(t, l)
				}
				return
			}
			// Alive well past several idle timeouts, by the server's clock.
			for {
				var age float64
				if err := admin.QueryRowContext(ctx, `SELECT extract(epoch FROM now() - backend_start)
					FROM pg_stat_activity WHERE pid = $1`, held.BackendPID()).Scan(&age); err != nil {
					t.Fatal(err)
				}
				if age > 3.5 {
					break
				}
				select {
				case <-watched.Done():
					t.Fatalf("lease lost although it was checked every %s: %v", tc.every, context.Cause(watched))
				case <-time.After(20 * time.Millisecond):
				}
			}
			if err := held.Check(ctx); err != nil {
				t.Errorf("Check after %s of idle timeouts: %v", tc.idleTimeout, err)
			}
			stop()
			if cause := context.Cause(watched); !errors.Is(cause, context.Canceled) {
				t.Errorf("stopped watch ended with %v, want context.Canceled", cause)
			}
		})
	}
}

// HolderOf reads who holds a lock without taking it; SessionAlive tells a
// live session from an earlier one with the same pid, and from a dead one.
func TestHolderOfAndSessionAlive(t *testing.T) {
	t.Parallel()
	a, b := twoPools(t)
	ctx := ctxFor(t)
	if _, held, err := lease.HolderOf(ctx, b, key); err != nil || held {
		t.Fatalf("HolderOf a free lock = %v, %v", held, err)
	}
	l, err := tryAcquire(t, a, key, proj)
	if err != nil {
		t.Fatal(err)
	}
	h, held, err := lease.HolderOf(ctx, b, key)
	if err != nil || !held || h.PID != l.BackendPID() || !h.BackendStart.Equal(l.BackendStart()) ||
		!strings.HasPrefix(h.ApplicationName, "syncd host=") {
		t.Errorf("HolderOf = %+v, %v, %v; want backend %d started %s", h, held, err, l.BackendPID(), l.BackendStart())
	}
	if alive, err := lease.SessionAlive(ctx, b, l.BackendPID(), l.BackendStart()); err != nil || !alive {
		t.Errorf("SessionAlive of the holder = %v, %v", alive, err)
	}
	if alive, err := lease.SessionAlive(ctx, b, l.BackendPID(), l.BackendStart().Add(-time.Second)); err != nil || alive {
		t.Errorf("SessionAlive of an earlier session with the same pid = %v, %v", alive, err)
	}
	release(t, l)
	if _, held, _ := lease.HolderOf(ctx, b, key); held {
		t.Error("HolderOf after release says held")
	}
	// Release ends the session from the client's side; the server's backend
	// exits a moment later, so pg_stat_activity is polled until it is gone
	// (until ctx's deadline, whose end fails the test here).
	for {
		alive, err := lease.SessionAlive(ctx, b, l.BackendPID(), l.BackendStart())
		if err != nil {
			t.Fatalf("a released lease's session never ended: %v", err)
		}
		if !alive {
			break
		}
	}
}

// A session holds bigint keys and pairs side by side; Held reads them back
// and InSpace lists the sessions of a space with all they hold.
func TestSessionKeys(t *testing.T) {
	t.Parallel()
	a, b := twoPools(t)
	ctx := ctxFor(t)
	space := lease.Space("syncd:test")
	s, err := lease.Open(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	member, leads := lease.Pair(space, 7), lease.Named("syncd:leader:p")
	for _, k := range []lease.Key{member, leads} {
		if ok, err := s.TryLock(ctx, k); err != nil || !ok {
			t.Fatalf("TryLock %s = %v, %v", k, ok, err)
		}
	}
	held, err := s.Held(ctx)
	if err != nil || len(held) != 2 || !held[member] || !held[leads] {
		t.Errorf("Held = %v, %v; want %s and %s", held, err, member, leads)
	}
	sessions, err := lease.InSpace(ctx, b, space)
	if err != nil || len(sessions) != 1 || sessions[0].PID != s.PID() || !sessions[0].Holds(member) || !sessions[0].Holds(leads) {
		t.Errorf("InSpace = %+v, %v; want session %d holding both", sessions, err, s.PID())
	}
	if ok, err := s.Unlock(ctx, leads); err != nil || !ok {
		t.Errorf("Unlock = %v, %v", ok, err)
	}
	if ok, err := s.Unlock(ctx, leads); err != nil || ok {
		t.Errorf("Unlock of a key not held = %v, %v; want false", ok, err)
	}
	if other, err := lease.InSpace(ctx, b, lease.Space("syncd:elsewhere")); err != nil || len(other) != 0 {
		t.Errorf("InSpace of an empty space = %+v, %v", other, err)
	}
}

// The keys of pg_locks are what every syncd version agrees on: changing a
// derivation would let an old and a new syncd hold "the same" lock at once.
// Expected values computed independently (FNV-1a 64 and 32).
func TestKeysAreStable(t *testing.T) {
	t.Parallel()
	if got := lease.Named("syncd:").Int64(); got != -4540576548158548096 {
		t.Errorf(`Named("syncd:") = %d`, got)
	}
	if got := lease.Named("syncd:my-project").Int64(); got != -5818640978907870690 {
		t.Errorf(`Named("syncd:my-project") = %d`, got)
	}
	if got := lease.Int64(-5818640978907870690); got != lease.Named("syncd:my-project") {
		t.Errorf("Int64 of a Named key's value is %s", got)
	}
	if got := lease.Space("syncd:members"); got != 20506675 {
		t.Errorf(`Space("syncd:members") = %d`, got)
	}
	if got := lease.Pair(1, 2).Int64(); got != 0 {
		t.Errorf("a pair's Int64 = %d, want 0", got)
	}
}
