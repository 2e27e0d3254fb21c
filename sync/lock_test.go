package sync_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/lease"
	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/sinch/sinchtest"
	"github.com/syncd/syncd/state"
	"github.com/syncd/syncd/state/statetest"
	contactsync "github.com/syncd/syncd/sync"
)

// lockRig is one database and one emulator shared by several reconcilers,
// each with a Store and a client of its own, as separate syncd processes
// would have.
type lockRig struct {
	url   string
	admin *state.Store
	emu   *sinchtest.Emulator
	base  string
	rows  []crm.Record
}

func newLockRig(t *testing.T, n int) *lockRig {
	t.Helper()
	url := statetest.NewDatabase(t)
	emu, srv := sinchtest.Start(t, sinchtest.Options{ProjectID: "chaos", KeyID: "k", KeySecret: "a-realistic-secret"})
	g := &lockRig{url: url, admin: statetest.OpenStore(t, url), emu: emu, base: srv.URL, rows: chaosRows(n, "Person")}
	if err := crm.UpsertRecords(context.Background(), g.admin.SQL(), "crm_contacts", g.rows); err != nil {
		t.Fatal(err)
	}
	return g
}

// process is a reconciler as another syncd process would run it. rps paces
// its creates, so that a run lasts long enough to be caught mid-way.
func (g *lockRig) process(t *testing.T, rps float64, check, grace time.Duration) *contactsync.Reconciler {
	t.Helper()
	cfg := g.emu.ClientConfig(g.base)
	cfg.RateLimitRPS = rps
	cfg.MaxConcurrency = 8
	cfg.MinBackoff = time.Millisecond
	cfg.MaxBackoff = 20 * time.Millisecond
	cfg.Timeout = 5 * time.Second
	client, err := sinch.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	store := statetest.OpenStore(t, g.url)
	return &contactsync.Reconciler{
		CRM: crm.New(store.SQL()), Links: store, Identities: store, Deferrals: store,
		Journal: store, Runs: store, Watermarks: store, Locks: store,
		Sinch: client, Logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)),
		ProjectID: "chaos", Source: crm.Source{Relation: "crm_contacts"}, BatchSize: 1000, Concurrency: 8, Options: planner.DefaultOptions(),
		LockCheck: check, LockGrace: grace,
	}
}

// setIdleTimeout sets idle_session_timeout for the sessions that open from
// now on, as an operator (or a managed service's default) would.
func (g *lockRig) setIdleTimeout(t *testing.T, v string) {
	t.Helper()
	if err := g.admin.DB().Exec(`DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET idle_session_timeout = %L',
		current_database(), '` + v + `'); END $$`).Error; err != nil {
		t.Fatal(err)
	}
}

// poll waits until cond holds, failing the test after a generous deadline.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond) // a poll interval, not a wait for an event
	}
}

// pollMidRun polls cond while the run of done goes on, and fails the test
// if the run ends first.
func (g *lockRig) pollMidRun(t *testing.T, done <-chan runResult, what string, cond func() bool) {
	t.Helper()
	var ended *runResult
	poll(t, what, func() bool {
		select {
		case res := <-done:
			ended = &res
			return true
		default:
			return cond()
		}
	})
	if ended != nil {
		t.Fatalf("the run ended (%s, %v) before %s", ended.rep.Outcome, ended.err, what)
	}
}

func (g *lockRig) holder(t *testing.T) (lease.Holder, bool) {
	t.Helper()
	h, held, err := g.admin.LockHolder(context.Background(), "chaos")
	if err != nil {
		t.Fatal(err)
	}
	return h, held
}

// duplicates counts the contacts beyond the first of every external_id.
func (g *lockRig) duplicates() (contacts, dups int) {
	seen := make(map[string]int)
	for _, c := range g.emu.Contacts() {
		contacts++
		seen[c.ExternalID]++
		if seen[c.ExternalID] > 1 {
			dups++
		}
	}
	return contacts, dups
}

func (g *lockRig) runs(t *testing.T) []state.Run {
	t.Helper()
	runs, err := g.admin.LastRuns(context.Background(), "chaos", 100)
	if err != nil {
		t.Fatal(err)
	}
	return runs
}

func (g *lockRig) serverNow(t *testing.T) time.Time {
	t.Helper()
	now, err := g.admin.Now(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return now
}

// checkConverged checks one contact per record, no duplicate, and that a
// further run would change nothing.
func (g *lockRig) checkConverged(t *testing.T, rec *contactsync.Reconciler) {
	t.Helper()
	contacts, dups := g.duplicates()
	t.Logf("%d contacts for %d rows, %d duplicates", contacts, len(g.rows), dups)
	if contacts != len(g.rows) || dups != 0 {
		t.Errorf("%d contacts and %d duplicates for %d rows, want one contact per row", contacts, dups, len(g.rows))
	}
	plan, err := rec.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !plan.Empty() {
		t.Errorf("a further run would still do %v", plan.Summary())
	}
}

type runResult struct {
	rep     contactsync.Report
	err     error
	at      time.Time
	creates int // creates Sinch had seen when the run returned
}

func (g *lockRig) start(rec *contactsync.Reconciler) <-chan runResult {
	done := make(chan runResult, 1)
	go func() {
		rep, err := rec.Backfill(context.Background(), false)
		done <- runResult{rep: rep, err: err, at: time.Now(), creates: g.emu.Calls(sinchtest.OpCreate)}
	}()
	return done
}

// checkLostLock checks that a run that lost its lock says so and is recorded
// as failed for it.
func (g *lockRig) checkLostLock(t *testing.T, res runResult) {
	t.Helper()
	if !errors.Is(res.err, lease.ErrLost) || res.rep.Outcome != state.OutcomeFailed ||
		!strings.Contains(res.err.Error(), "lost the project lock") {
		t.Errorf("first run: outcome %s, err %v; want failed for a lost lock", res.rep.Outcome, res.err)
	}
	for _, r := range g.runs(t) {
		if r.ID == res.rep.RunID && (r.Outcome != state.OutcomeFailed || !strings.Contains(r.Error, "lost the project lock")) {
			t.Errorf("first run recorded as %s (%q), want failed for a lost lock", r.Outcome, r.Error)
		}
	}
	// A create cut off by the lost lock may have reached Sinch: it is
	// unknown, never failed, and no entry is left pending.
	entries, err := g.admin.Journal(t.Context(), res.rep.RunID)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Status == state.StatusFailed || e.Status == state.StatusPending {
			t.Errorf("the first run journaled %s %s as %s (%s)", e.Kind, e.ExternalID, e.Status, e.Error)
		}
	}
}

// TestLostLockReproductions replays the two reports of issue 10 in which a
// second runner took the project lock while the first run was still sending.
// Each ends with one contact per row and a project that has converged.
func TestLostLockReproductions(t *testing.T) {
	const n = 2000

	// The lock's backend is killed mid-run (a failover, pg_terminate_backend):
	// the first run stops within two checks and fails; the second waits out
	// the grace and finishes the job.
	t.Run("terminated backend", func(t *testing.T) {
		t.Parallel()
		g := newLockRig(t, n)
		// Checks twice a second, not the default once, to keep the test
		// short; much more often and a loaded machine (-race, 2 cores shared)
		// would make checks miss their lease, which counts as a lost lock.
		const check = 500 * time.Millisecond
		first := g.process(t, 1500, check, 2*check+time.Second)
		second := g.process(t, 5000, check, 2*check+time.Second)
		done := g.start(first)
		g.pollMidRun(t, done, "the first run has created 300 contacts", func() bool { return g.emu.Calls(sinchtest.OpCreate) >= 300 })
		h, held := g.holder(t)
		if !held {
			t.Fatal("nobody holds the lock mid-run")
		}
		killed, atKill := time.Now(), g.emu.Calls(sinchtest.OpCreate)
		if err := g.admin.DB().Exec(`SELECT pg_terminate_backend(?, 30000)`, h.PID).Error; err != nil {
			t.Fatal(err)
		}
		// It waits for the first to step down: a full run holds the
		// full-run lock until it ends.
		rep, err := second.Backfill(context.Background(), true)
		if err != nil || rep.Outcome != state.OutcomeSucceeded {
			t.Errorf("second run: outcome %s, err %v", rep.Outcome, err)
		}
		res := <-done
		t.Logf("first run stepped down %s after its backend was killed, with %d creates then and %d when it returned",
			res.at.Sub(killed).Round(time.Millisecond), atKill, res.creates)
		g.checkLostLock(t, res)
		g.checkConverged(t, first)
	})

	// idle_session_timeout, with the lock checked at the default interval:
	// the checks keep the lock's session busy, so it outlives the timeout
	// and the second runner finds the project locked.
	t.Run("idle timeout outlived", func(t *testing.T) {
		t.Parallel()
		g := newLockRig(t, n)
		g.setIdleTimeout(t, "3s")
		first := g.process(t, 300, lease.DefaultCheck, 0)
		second := g.process(t, 5000, lease.DefaultCheck, 0)
		done := g.start(first)
		g.pollMidRun(t, done, "the lock's session has outlived the idle timeout twice", func() bool {
			h, held := g.holder(t)
			if !held {
				return false
			}
			var age float64
			if err := g.admin.DB().Raw(`SELECT COALESCE(extract(epoch FROM now() - max(backend_start)), 0)
				FROM pg_stat_activity WHERE pid = ?`, h.PID).Scan(&age).Error; err != nil {
				t.Fatal(err)
			}
			return age > 4
		})
		if _, err := second.Backfill(context.Background(), false); !contactsync.IsLocked(err) {
			t.Errorf("second backfill during the first: %v, want locked", err)
		}
		res := <-done
		if res.err != nil || res.rep.Outcome != state.OutcomeSucceeded {
			t.Errorf("first run: outcome %s, err %v; want succeeded", res.rep.Outcome, res.err)
		}
		g.checkConverged(t, first)
	})

	// idle_session_timeout shorter than the default check interval (a
	// misconfiguration the checks cannot help): the server closes the lock's
	// idle session, the second runner takes the lock, and the first stops at
	// its next check. The second runner's sessions start without the timeout,
	// as if the operator had fixed it meanwhile: with it, it would lose its
	// lock the same way.
	t.Run("idle timeout shorter than the checks", func(t *testing.T) {
		t.Parallel()
		g := newLockRig(t, n)
		g.setIdleTimeout(t, "500ms")
		const check = lease.DefaultCheck
		first := g.process(t, 1500, check, 2*check+time.Second)
		done := g.start(first)
		g.pollMidRun(t, done, "the first run holds the lock", func() bool { _, held := g.holder(t); return held })
		g.pollMidRun(t, done, "the server has closed the lock's idle session", func() bool { _, held := g.holder(t); return !held })
		lost, atLoss := time.Now(), g.emu.Calls(sinchtest.OpCreate)
		g.setIdleTimeout(t, "0")
		second := g.process(t, 5000, check, 2*check+time.Second)
		// It waits for the first to step down: a full run holds the
		// full-run lock until it ends.
		rep, err := second.Backfill(context.Background(), true)
		if err != nil || rep.Outcome != state.OutcomeSucceeded {
			t.Errorf("second run: outcome %s, err %v", rep.Outcome, err)
		}
		res := <-done
		t.Logf("first run stepped down %s after its session was closed, with %d creates then and %d when it returned",
			res.at.Sub(lost).Round(time.Millisecond), atLoss, res.creates)
		g.checkLostLock(t, res)
		g.checkConverged(t, first)
	})
}

// TestEarlierRunFencing: a runner that takes the lock and finds an earlier
// run still "running" never closes it while that run's lock session lives,
// waits out the grace before writing unless the run's process is known gone,
// and then closes it as interrupted.
func TestEarlierRunFencing(t *testing.T) {
	t.Parallel()
	const grace = 1200 * time.Millisecond
	g := newLockRig(t, 20)
	rec := g.process(t, 5000, 500*time.Millisecond, grace)
	ctx := context.Background()

	// A live session that holds no lock of this project, standing for a
	// process whose lock was taken over while its session lived on.
	elsewhere, err := statetest.OpenStore(t, g.url).TryLock(ctx, "another-project")
	if err != nil {
		t.Fatal(err)
	}
	defer elsewhere.Release(ctx)
	child := exec.Command(os.Args[0], "-test.run=^$")
	if err := child.Run(); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	ns, _ := os.Readlink("/proc/self/ns/pid")
	insert := func(host string, pid int, ns string, lockPID int, lockStart time.Time) int64 {
		t.Helper()
		var id int64
		if err := g.admin.DB().Raw(`INSERT INTO syncd.runs (project_id, kind, host, pid, pid_namespace, lock_pid, lock_backend_start)
			VALUES ('chaos', 'full', ?, ?, ?, ?, ?) RETURNING id`, host, pid, ns, lockPID, lockStart).Scan(&id).Error; err != nil {
			t.Fatal(err)
		}
		return id
	}
	outcomeOf := func(id int64) state.Outcome {
		t.Helper()
		for _, r := range g.runs(t) {
			if r.ID == id {
				return r.Outcome
			}
		}
		t.Fatalf("no run %d", id)
		return ""
	}
	// backfill runs one and returns how long after it began, by the
	// server's clock, its run was recorded as started.
	backfill := func(ctx context.Context) time.Duration {
		t.Helper()
		before := g.serverNow(t)
		rep, err := rec.Backfill(ctx, false)
		if err != nil || rep.Outcome != state.OutcomeSucceeded {
			t.Fatalf("backfill: outcome %s, err %v", rep.Outcome, err)
		}
		for _, r := range g.runs(t) {
			if r.ID == rep.RunID {
				return r.StartedAt.Sub(before)
			}
		}
		t.Fatalf("no run %d", rep.RunID)
		return 0
	}

	live := insert("elsewhere", 4242, "pid:[1]", elsewhere.BackendPID(), elsewhere.BackendStart())
	if waited := backfill(ctx); waited < grace {
		t.Errorf("started %s after taking the lock, before the %s grace was over", waited, grace)
	}
	if got := outcomeOf(live); got != state.OutcomeRunning {
		t.Errorf("run with a live lock session became %s, want still running", got)
	}

	if err := elsewhere.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if waited := backfill(ctx); waited < grace {
		t.Errorf("started %s after taking the lock, before the %s grace was over", waited, grace)
	}
	if got := outcomeOf(live); got != state.OutcomeInterrupted {
		t.Errorf("run whose lock session is gone became %s, want interrupted", got)
	}

	// A run of a process of this host that has exited is closed at once:
	// with a grace longer than the context allows, waiting would fail.
	rec.LockGrace = time.Hour
	gone := insert(host, child.Process.Pid, ns, 0, time.Time{})
	short, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	backfill(short)
	if got := outcomeOf(gone); got != state.OutcomeInterrupted {
		t.Errorf("run of an exited process became %s, want interrupted", got)
	}
}
