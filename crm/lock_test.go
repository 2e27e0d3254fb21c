package crm_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/crm/crmtest"
)

// Two Stores on one database stand for two syncd processes.
func twoStores(t *testing.T) (*crm.Store, *crm.Store) {
	t.Helper()
	url := crmtest.NewDatabase(t)
	return crmtest.OpenStore(t, url), crmtest.OpenStore(t, url)
}

func release(t *testing.T, l *crm.Lock) {
	t.Helper()
	if err := l.Release(ctxFor(t)); err != nil {
		t.Errorf("release: %v", err)
	}
}

func TestTryLockConflict(t *testing.T) {
	t.Parallel()
	a, b := twoStores(t)
	ctx := ctxFor(t)

	held, err := a.TryLock(ctx, "proj")
	if err != nil {
		t.Fatal(err)
	}
	if err := held.Check(ctx); err != nil {
		t.Fatalf("Check on a held lock: %v", err)
	}

	_, err = b.TryLock(ctx, "proj")
	if !errors.Is(err, crm.ErrLocked) {
		t.Fatalf("second TryLock: %v, want ErrLocked", err)
	}
	var locked *crm.LockedError
	if !errors.As(err, &locked) {
		t.Fatalf("%T is not a *LockedError", err)
	}
	if locked.ProjectID != "proj" || locked.PID != held.BackendPID() ||
		!strings.HasPrefix(locked.ApplicationName, "syncd host=") || locked.BackendStart.IsZero() {
		t.Errorf("holder = %+v, want backend pid %d of a syncd session", locked, held.BackendPID())
	}

	// Locks are per project.
	otherProject, err := b.TryLock(ctx, "other")
	if err != nil {
		t.Fatalf("lock on another project: %v", err)
	}
	release(t, otherProject)

	release(t, held)
	release(t, held) // twice is harmless
	if err := held.Check(ctx); !errors.Is(err, crm.ErrLockLost) {
		t.Errorf("Check after release = %v, want ErrLockLost", err)
	}
	taken, err := b.TryLock(ctx, "proj")
	if err != nil {
		t.Fatalf("TryLock after release: %v", err)
	}
	release(t, taken)
}

// waitUntilWaiting polls pg_locks until a session is queued for the
// project's lock. It polls the server rather than sleeping: the wait ends as
// soon as the state is there.
func waitUntilWaiting(t *testing.T, s *crm.Store, projectID string, want bool) {
	t.Helper()
	key := crm.LockKey(projectID)
	for ctx := ctxFor(t); ctx.Err() == nil; {
		var waiting bool
		err := s.DB().WithContext(ctx).Raw(`SELECT EXISTS (SELECT 1 FROM pg_locks
			WHERE locktype = 'advisory' AND NOT granted
				AND ((classid::bigint << 32) | objid::bigint) = ?)`, key).
			Scan(&waiting).Error
		if err != nil {
			t.Fatal(err)
		}
		if waiting == want {
			return
		}
	}
	t.Fatalf("no session ever %s for the lock", map[bool]string{true: "waited", false: "stopped waiting"}[want])
}

func TestLockWaitsForRelease(t *testing.T) {
	t.Parallel()
	a, b := twoStores(t)
	ctx := ctxFor(t)
	held, err := a.TryLock(ctx, "proj")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	var waited *crm.Lock
	go func() {
		var err error
		waited, err = b.Lock(ctx, "proj")
		got <- err
	}()
	waitUntilWaiting(t, a, "proj", true)
	release(t, held)
	if err := <-got; err != nil {
		t.Fatalf("Lock: %v", err)
	}
	if err := waited.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	release(t, waited)
}

func TestLockIsCancellable(t *testing.T) {
	t.Parallel()
	a, b := twoStores(t)
	ctx := ctxFor(t)
	held, err := a.TryLock(ctx, "proj")
	if err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithCancel(ctx)
	got := make(chan error, 1)
	go func() {
		l, err := b.Lock(waitCtx, "proj")
		if l != nil {
			_ = l.Release(context.Background())
		}
		got <- err
	}()
	waitUntilWaiting(t, a, "proj", true)
	cancel()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("Lock after cancel: %v, want context.Canceled", err)
	}
	// The abandoned wait must not linger and take the lock later.
	waitUntilWaiting(t, a, "proj", false)
	release(t, held)
	l, err := b.TryLock(ctx, "proj")
	if err != nil {
		t.Fatalf("TryLock after a cancelled wait: %v", err)
	}
	release(t, l)
}

// A holder that dies (crash, network cut, killed backend) must not keep the
// project locked.
func TestLockDiesWithItsConnection(t *testing.T) {
	t.Parallel()
	a, b := twoStores(t)
	ctx := ctxFor(t)
	held, err := a.TryLock(ctx, "proj")
	if err != nil {
		t.Fatal(err)
	}
	var terminated bool
	// The timeout makes pg_terminate_backend wait until the backend is gone,
	// and with it its locks.
	if err := b.DB().WithContext(ctx).Raw(`SELECT pg_terminate_backend(?, 30000)`, held.BackendPID()).
		Scan(&terminated).Error; err != nil || !terminated {
		t.Fatalf("terminate holder: %v %v", terminated, err)
	}
	if err := held.Check(ctx); !errors.Is(err, crm.ErrLockLost) {
		t.Errorf("Check on a dead session = %v, want ErrLockLost", err)
	}
	taken, err := b.TryLock(ctx, "proj")
	if err != nil {
		t.Fatalf("TryLock after the holder died: %v", err)
	}
	release(t, taken)
	_ = held.Release(ctx)
}

func TestLockKeyIsStable(t *testing.T) {
	t.Parallel()
	// Changing the key would let an old and a new syncd run side by side.
	// Expected values computed independently (FNV-1a 64 of "syncd:"+id).
	tests := []struct {
		project string
		want    int64
	}{
		{"", -4540576548158548096},
		{"my-project", -5818640978907870690},
	}
	for _, tc := range tests {
		if got := crm.LockKey(tc.project); got != tc.want {
			t.Errorf("LockKey(%q) = %d, want %d", tc.project, got, tc.want)
		}
	}
}

// terminate ends a backend as pg_terminate_backend does to a session whose
// server restarts or fails over; it returns once the backend is gone.
func terminate(t *testing.T, s *crm.Store, pid int) {
	t.Helper()
	var ok bool
	if err := s.DB().WithContext(ctxFor(t)).Raw(`SELECT pg_terminate_backend(?, 30000)`, pid).Scan(&ok).Error; err != nil || !ok {
		t.Fatalf("terminate backend %d: %v %v", pid, ok, err)
	}
}

// lostWithin waits for a watched context to end and checks that it ended
// for a lost lock; it returns how long that took.
func lostWithin(t *testing.T, watched context.Context, from time.Time) time.Duration {
	t.Helper()
	select {
	case <-watched.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the watch never noticed the lost lock")
	}
	took := time.Since(from)
	if cause := context.Cause(watched); !errors.Is(cause, crm.ErrLockLost) {
		t.Errorf("watched context ended with %v, want a cause matching ErrLockLost", cause)
	}
	return took
}

// The watch notices a lock whose session was killed, and one whose session
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
			url := crmtest.NewDatabase(t)
			admin := crmtest.OpenStore(t, url)
			ctx := ctxFor(t)
			if tc.idleTimeout != "" {
				mustExec(t, admin, `DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET idle_session_timeout = %L',
					current_database(), '`+tc.idleTimeout+`'); END $$`)
			}
			holder := crmtest.OpenStore(t, url) // its sessions start with the database's settings
			held, err := holder.TryLock(ctx, "proj")
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
				if _, err := admin.TryLock(ctx, "proj"); err != nil {
					t.Errorf("TryLock after the holder stepped down: %v", err)
				}
				return
			}
			// Alive well past several idle timeouts, by the server's clock.
			for {
				var age float64
				if err := admin.DB().WithContext(ctx).Raw(`SELECT extract(epoch FROM now() - backend_start)
					FROM pg_stat_activity WHERE pid = ?`, held.BackendPID()).Scan(&age).Error; err != nil {
					t.Fatal(err)
				}
				if age > 3.5 {
					break
				}
				select {
				case <-watched.Done():
					t.Fatalf("lock lost although it was checked every %s: %v", tc.every, context.Cause(watched))
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

// LockHolder reads who holds the lock without taking it.
func TestLockHolder(t *testing.T) {
	t.Parallel()
	a, b := twoStores(t)
	ctx := ctxFor(t)
	if _, held, err := b.LockHolder(ctx, "proj"); err != nil || held {
		t.Fatalf("LockHolder of a free lock = %v, %v", held, err)
	}
	l, err := a.TryLock(ctx, "proj")
	if err != nil {
		t.Fatal(err)
	}
	h, held, err := b.LockHolder(ctx, "proj")
	if err != nil || !held || h.PID != l.BackendPID() || !h.BackendStart.Equal(l.BackendStart()) ||
		!strings.HasPrefix(h.ApplicationName, "syncd host=") {
		t.Errorf("LockHolder = %+v, %v, %v; want backend %d started %s", h, held, err, l.BackendPID(), l.BackendStart())
	}
	release(t, l)
	if _, held, _ := b.LockHolder(ctx, "proj"); held {
		t.Error("LockHolder after release says held")
	}
}

// A run started under a lock names the lock's session, which is alive while
// held and gone once released; a lock that is lost starts no run.
func TestLockStartRun(t *testing.T) {
	t.Parallel()
	a, b := twoStores(t)
	ctx := ctxFor(t)
	l, err := a.TryLock(ctx, "proj")
	if err != nil {
		t.Fatal(err)
	}
	run, err := l.StartRun(ctx, "full")
	if err != nil {
		t.Fatal(err)
	}
	if run.LockPID != l.BackendPID() || !run.LockBackendStart.Equal(l.BackendStart()) || run.PIDNamespace == "" {
		t.Errorf("run = %+v, want lock session %d/%s and a pid namespace", run, l.BackendPID(), l.BackendStart())
	}
	stored, err := b.InterruptedRuns(ctx, "proj")
	if err != nil || len(stored) != 1 || stored[0].LockPID != run.LockPID || !stored[0].LockBackendStart.Equal(run.LockBackendStart) ||
		stored[0].PIDNamespace != run.PIDNamespace {
		t.Fatalf("stored runs = %+v, %v; want %+v", stored, err, run)
	}
	if alive, err := b.SessionAlive(ctx, run.LockPID, run.LockBackendStart); err != nil || !alive {
		t.Errorf("SessionAlive of the holder = %v, %v", alive, err)
	}
	if alive, err := b.SessionAlive(ctx, run.LockPID, run.LockBackendStart.Add(-time.Second)); err != nil || alive {
		t.Errorf("SessionAlive of an earlier session with the same pid = %v, %v", alive, err)
	}
	terminate(t, b, l.BackendPID())
	if alive, err := b.SessionAlive(ctx, run.LockPID, run.LockBackendStart); err != nil || alive {
		t.Errorf("SessionAlive of a terminated session = %v, %v", alive, err)
	}
	if _, err := l.StartRun(ctx, "full"); !errors.Is(err, crm.ErrLockLost) {
		t.Errorf("StartRun on a lost lock = %v, want ErrLockLost", err)
	}
	_ = l.Release(ctx)

	if err := b.FinishRun(ctx, run.ID, "failed", nil, "lost the lock"); err != nil {
		t.Fatal(err)
	}
	if err := b.FinishRun(ctx, run.ID, "interrupted", nil, ""); !errors.Is(err, crm.ErrRunFinished) {
		t.Errorf("finishing a finished run = %v, want ErrRunFinished", err)
	}
	if runs, _ := b.LastRuns(ctx, "proj", 1); len(runs) != 1 || runs[0].Outcome != "failed" {
		t.Errorf("runs = %+v, want the first outcome kept", runs)
	}
}

// ProcessGone trusts only what it can see: a process of this host and PID
// namespace that has exited.
func TestRunProcessGone(t *testing.T) {
	t.Parallel()
	host, _ := os.Hostname()
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(os.Args[0], "-test.run=^$")
	if err := child.Run(); err != nil {
		t.Fatal(err)
	}
	exited := child.Process.Pid
	tests := []struct {
		name string
		run  crm.Run
		want bool
	}{
		{"exited child", crm.Run{Host: host, PIDNamespace: ns, PID: exited}, true},
		{"this process", crm.Run{Host: host, PIDNamespace: ns, PID: os.Getpid()}, false},
		{"a live process", crm.Run{Host: host, PIDNamespace: ns, PID: os.Getppid()}, false},
		{"another host", crm.Run{Host: host + "-other", PIDNamespace: ns, PID: exited}, false},
		{"another pid namespace", crm.Run{Host: host, PIDNamespace: "pid:[1]", PID: exited}, false},
		{"unknown namespace", crm.Run{Host: host, PID: exited}, false},
	}
	for _, tc := range tests {
		if got := tc.run.ProcessGone(); got != tc.want {
			t.Errorf("%s: ProcessGone = %v, want %v", tc.name, got, tc.want)
		}
	}
}
