package sync_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/state"
	contactsync "github.com/syncd/syncd/sync"
)

// daemonRig runs a Daemon whose schedules are ticks the test fires.
type daemonRig struct {
	t     *testing.T
	ticks chan state.RunKind
	runs  chan contactsync.Report
	skips chan string // "kind reason"
}

func startDaemon(t *testing.T, rec *contactsync.Reconciler) *daemonRig {
	t.Helper()
	r := &daemonRig{t: t, ticks: make(chan state.RunKind), runs: make(chan contactsync.Report, 16), skips: make(chan string, 16)}
	d := &contactsync.Daemon{
		Reconciler: rec, Logger: zaptest.NewLogger(t), Incremental: "@every 1h", Full: "@every 1h", Ticks: r.ticks,
		OnRun: func(rep contactsync.Report, err error) {
			if err != nil {
				t.Errorf("%s run: %v", rep.Kind, err)
			}
			r.runs <- rep
		},
		OnSkip: func(kind state.RunKind, reason string) { r.skips <- string(kind) + " " + reason },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
	})
	return r
}

func (r *daemonRig) tick(kind state.RunKind) {
	r.t.Helper()
	select {
	case r.ticks <- kind:
	case <-time.After(30 * time.Second):
		r.t.Fatalf("the daemon did not take a %s tick", kind)
	}
}

// next is the next run the daemon reports, or the next skip.
func (r *daemonRig) next() (run *contactsync.Report, skip string) {
	r.t.Helper()
	select {
	case rep := <-r.runs:
		return &rep, ""
	case s := <-r.skips:
		return nil, s
	case <-time.After(30 * time.Second):
		r.t.Fatal("the daemon neither ran nor skipped anything")
		return nil, ""
	}
}

func (r *daemonRig) wantRun(kind state.RunKind) {
	r.t.Helper()
	if run, skip := r.next(); run == nil || run.Kind != kind || run.Outcome != state.OutcomeSucceeded {
		r.t.Fatalf("got run %+v / skip %q, want a %s run that succeeded", run, skip, kind)
	}
}

func (r *daemonRig) wantSkip(want string) {
	r.t.Helper()
	if run, skip := r.next(); skip != want {
		r.t.Fatalf("got run %+v / skip %q, want skip %q", run, skip, want)
	}
}

// idleThenIncremental ticks incremental until one runs: the ticks that find
// a run still going are skipped. No full run may come first: that would be a
// full run queued twice.
func (r *daemonRig) idleThenIncremental() {
	r.t.Helper()
	for {
		r.tick(state.RunIncremental)
		run, skip := r.next()
		switch {
		case skip == "incremental running":
			continue
		case run != nil && run.Kind == state.RunIncremental:
			return
		default:
			r.t.Fatalf("got run %+v / skip %q, want the incremental run", run, skip)
		}
	}
}

// TestDaemonLanes: full runs go in a lane of their own, beside partial
// runs. A full run that falls due while another process runs a full run
// waits for it and runs once, however many times it fell due meanwhile; an
// incremental run goes on meanwhile. A full run that falls due during an
// incremental run starts at once, beside it.
func TestDaemonLanes(t *testing.T) {
	t.Run("behind another process's full run", func(t *testing.T) {
		t.Parallel()
		g := newLockRig(t, 20)
		rec := g.process(t, 5000, 500*time.Millisecond, 0)
		if _, err := rec.Run(context.Background(), state.RunFull, false); err != nil {
			t.Fatal(err)
		}
		d := startDaemon(t, rec)
		other, err := g.admin.TryLockFullRun(context.Background(), "chaos")
		if err != nil {
			t.Fatal(err)
		}
		d.tick(state.RunFull)
		poll(t, "the full run waits for the full-run lock", func() bool {
			var waiting int64
			if err := g.admin.DB().Raw(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`).
				Scan(&waiting).Error; err != nil {
				t.Fatal(err)
			}
			return waiting > 0
		})
		d.tick(state.RunFull)
		d.wantSkip("full running")
		d.tick(state.RunIncremental)
		d.wantRun(state.RunIncremental) // beside the waiting full run
		if err := other.Release(context.Background()); err != nil {
			t.Fatal(err)
		}
		d.wantRun(state.RunFull)
	})

	t.Run("beside this process's incremental run", func(t *testing.T) {
		t.Parallel()
		g := newLockRig(t, 20)
		rec := g.process(t, 5000, 500*time.Millisecond, 0)
		var hold atomic.Pointer[chan struct{}]
		entered := make(chan struct{}, 1)
		rec.OnProgress = func(contactsync.Progress) {
			if h := hold.Swap(nil); h != nil {
				entered <- struct{}{}
				<-*h
			}
		}
		d := startDaemon(t, rec)
		d.tick(state.RunFull)
		d.wantRun(state.RunFull)

		edited := g.rows[3]
		edited.DisplayName = str("Edited")
		edited.UpdatedAt = time.Now()
		if err := crm.UpsertRecords(context.Background(), g.admin.SQL(), "crm_contacts", []crm.Record{edited}); err != nil {
			t.Fatal(err)
		}
		release := make(chan struct{})
		hold.Store(&release)
		d.tick(state.RunIncremental)
		<-entered // the incremental run holds the project lock, stopped mid-way
		d.tick(state.RunFull)
		poll(t, "the full run has started beside it", func() bool {
			for _, r := range g.runs(t) {
				if r.Kind == state.RunFull && r.Outcome == state.OutcomeRunning {
					return true
				}
			}
			return false
		})
		d.tick(state.RunFull)
		d.wantSkip("full running")
		close(release)
		for range 2 {
			if run, skip := d.next(); run == nil || run.Outcome != state.OutcomeSucceeded {
				t.Fatalf("got run %+v / skip %q, want the incremental and the full run to succeed", run, skip)
			}
		}
		if cs := byExternalID(g.emu)["crm-00003"]; len(cs) != 1 || cs[0].DisplayName != "Edited" {
			t.Errorf("crm-00003 is %v, want its edit", cs)
		}
	})
}

// SetSchedules takes effect on a running daemon, NextRuns tells each
// schedule's next firing by its kind, and the heartbeat comes from the
// scheduler.
func TestDaemonSetSchedulesAndHeartbeat(t *testing.T) {
	g := newLockRig(t, 3)
	runs := make(chan state.RunKind, 16)
	var beats atomic.Int32
	d := &contactsync.Daemon{
		Reconciler: g.process(t, 5000, 500*time.Millisecond, 0), Logger: zaptest.NewLogger(t),
		Incremental: "@every 1h", Full: "@every 2h",
		OnRun:          func(rep contactsync.Report, _ error) { runs <- rep.Kind },
		Heartbeat:      func() { beats.Add(1) },
		HeartbeatEvery: time.Second,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, nil) }()
	t.Cleanup(func() { cancel(); <-done })
	poll(t, "the scheduler beats", func() bool { return beats.Load() >= 1 })
	inc, full := d.NextRuns()
	if until := time.Until(inc); until < 50*time.Minute || until > time.Hour {
		t.Errorf("next incremental in %v, want about 1h", until)
	}
	if until := time.Until(full); until < 110*time.Minute || until > 2*time.Hour {
		t.Errorf("next full in %v, want about 2h", until)
	}
	if err := d.SetSchedules("@every 1s", "@every 3h"); err != nil {
		t.Fatal(err)
	}
	select {
	case kind := <-runs:
		if kind != state.RunIncremental && kind != state.RunFull {
			t.Errorf("a %s run", kind)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no run on the new schedule")
	}
	if _, full := d.NextRuns(); time.Until(full) < 2*time.Hour {
		t.Errorf("next full in %v, want about 3h", time.Until(full))
	}
	if err := d.SetSchedules("every minute", "@daily"); err == nil {
		t.Error("a schedule that does not parse was taken")
	}
}
