package crm_test

import (
	"context"
	"errors"
	"strings"
	"testing"

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
