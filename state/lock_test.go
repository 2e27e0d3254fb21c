package state_test

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/syncd/syncd/lease"
	"github.com/syncd/syncd/state"
	"github.com/syncd/syncd/state/statetest"
)

// Two Stores on one database stand for two syncd processes.
func twoStores(t *testing.T) (*state.Store, *state.Store) {
	t.Helper()
	url := statetest.NewDatabase(t)
	return statetest.OpenStore(t, url), statetest.OpenStore(t, url)
}

func release(t *testing.T, l *state.Lock) {
	t.Helper()
	if err := l.Release(ctxFor(t)); err != nil {
		t.Errorf("release: %v", err)
	}
}

// The project lock is a lease per project, and one held elsewhere is
// refused naming the project and its holder.
func TestTryLockConflict(t *testing.T) {
	t.Parallel()
	a, b := twoStores(t)
	ctx := ctxFor(t)
	held, err := a.TryLock(ctx, "proj")
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.TryLock(ctx, "proj")
	var locked *lease.HeldError
	if !errors.Is(err, lease.ErrHeld) || !errors.As(err, &locked) {
		t.Fatalf("second TryLock: %v, want a *lease.HeldError", err)
	}
	if locked.Name != `project "proj"` || locked.PID != held.BackendPID() {
		t.Errorf("holder = %+v, want project \"proj\" held by backend pid %d", locked, held.BackendPID())
	}
	otherProject, err := b.TryLock(ctx, "other")
	if err != nil {
		t.Fatalf("lock on another project: %v", err)
	}
	release(t, otherProject)
	release(t, held)
	taken, err := b.TryLock(ctx, "proj")
	if err != nil {
		t.Fatalf("TryLock after release: %v", err)
	}
	release(t, taken)
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
		if got := state.ProjectKey(tc.project).Int64(); got != tc.want {
			t.Errorf("LockKey(%q) = %d, want %d", tc.project, got, tc.want)
		}
	}
}

// terminate ends a backend as pg_terminate_backend does to a session whose
// server restarts or fails over; it returns once the backend is gone.
func terminate(t *testing.T, s *state.Store, pid int) {
	t.Helper()
	var ok bool
	if err := s.DB().WithContext(ctxFor(t)).Raw(`SELECT pg_terminate_backend(?, 30000)`, pid).Scan(&ok).Error; err != nil || !ok {
		t.Fatalf("terminate backend %d: %v %v", pid, ok, err)
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
	if _, err := l.StartRun(ctx, "full"); !errors.Is(err, lease.ErrLost) {
		t.Errorf("StartRun on a lost lock = %v, want lease.ErrLost", err)
	}
	_ = l.Release(ctx)

	if err := b.FinishRun(ctx, run.ID, "failed", nil, "lost the lock"); err != nil {
		t.Fatal(err)
	}
	if err := b.FinishRun(ctx, run.ID, "interrupted", nil, ""); !errors.Is(err, state.ErrRunFinished) {
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
		run  state.Run
		want bool
	}{
		{"exited child", state.Run{Host: host, PIDNamespace: ns, PID: exited}, true},
		{"this process", state.Run{Host: host, PIDNamespace: ns, PID: os.Getpid()}, false},
		{"a live process", state.Run{Host: host, PIDNamespace: ns, PID: os.Getppid()}, false},
		{"another host", state.Run{Host: host + "-other", PIDNamespace: ns, PID: exited}, false},
		{"another pid namespace", state.Run{Host: host, PIDNamespace: "pid:[1]", PID: exited}, false},
		{"unknown namespace", state.Run{Host: host, PID: exited}, false},
	}
	for _, tc := range tests {
		if got := tc.run.ProcessGone(); got != tc.want {
			t.Errorf("%s: ProcessGone = %v, want %v", tc.name, got, tc.want)
		}
	}
}
