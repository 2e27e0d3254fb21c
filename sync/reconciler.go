package sync

import (
	"context"
	"errors"
	"fmt"
	"iter"
	stdsync "sync"
	"time"

	"go.uber.org/zap"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/lease"
	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/state"
)

// SinchAPI is what the reconciler needs from Sinch; *sinch.Client has it.
type SinchAPI interface {
	Pages(ctx context.Context, req sinch.ListContactsRequest) iter.Seq2[[]sinch.Contact, error]
	FindByExternalID(ctx context.Context, externalID string) ([]sinch.Contact, error)
	GetContact(ctx context.Context, id string) (*sinch.Contact, error)
	CreateContact(ctx context.Context, c sinch.Contact) (*sinch.Contact, error)
	UpdateContact(ctx context.Context, id string, body sinch.Contact, mask []string) (*sinch.Contact, error)
	DeleteContact(ctx context.Context, id string) error
	MergeContacts(ctx context.Context, destinationID, sourceID string) (*sinch.Contact, error)
}

// CRM is what the reconciler reads of the CRM source; *crm.Reader has it.
type CRM interface {
	Records(ctx context.Context, source crm.Source, batchSize int) iter.Seq2[[]crm.Record, error]
	RecordsByExternalID(ctx context.Context, source crm.Source, ids []string) ([]crm.Record, error)
	ChangedSince(ctx context.Context, source crm.Source, since time.Time, batchSize int) iter.Seq2[[]crm.Record, error]
	ReadHorizon(ctx context.Context) (horizon, now time.Time, err error)
}

// Links are the stored links of CRM records to their contacts; *state.Store
// has them.
type Links interface {
	// EachLink reads every link of the project, for a full run.
	EachLink(ctx context.Context, projectID string, fn func(planner.Link)) error
	// LinksOf, LinksTo, VanishedLinks and CountLinks read the links a
	// partial run's scope reaches.
	LinksOf(ctx context.Context, projectID string, externalIDs []string) ([]planner.Link, error)
	LinksTo(ctx context.Context, projectID string, contactIDs []string) ([]planner.Link, error)
	VanishedLinks(ctx context.Context, projectID string, source crm.Source) ([]planner.Link, error)
	CountLinks(ctx context.Context, projectID string) (int, error)
	SaveLinks(ctx context.Context, projectID string, links []planner.Link) error
	DeleteLinks(ctx context.Context, projectID string, externalIDs []string) error
}

// Identities is the index of the identity keys each live record holds,
// which a partial run's scope grows over without scanning the source;
// *state.Store has it.
type Identities interface {
	RecordIdentities(ctx context.Context, projectID string, externalIDs []string) (map[string][]string, error)
	RecordsHolding(ctx context.Context, projectID string, keys []string) ([]state.Holding, error)
	IndexIdentities(ctx context.Context, projectID string, keys map[string][]string) error
	BuildIdentities(ctx context.Context, projectID string, rows iter.Seq2[string, []string]) error
	PruneIdentities(ctx context.Context, projectID string, source crm.Source) error
	IdentitiesIndexed(ctx context.Context, projectID string) (bool, error)
}

// Deferrals are what partial runs left to the next full run; *state.Store
// has them.
type Deferrals interface {
	Defer(ctx context.Context, projectID string, ds []state.Deferral) ([]state.Deferral, error)
	Deferred(ctx context.Context, projectID, kind string, keys []string) ([]state.Deferral, error)
	ClearDeferred(ctx context.Context, projectID string, t time.Time) error
}

// Runs is the run history, which a run records its end in and the next
// holder of the lock closes what earlier runs left open in (a run starts
// under its lock: state.Lock.StartRun); *state.Store has it.
type Runs interface {
	InterruptedRuns(ctx context.Context, projectID string) ([]state.Run, error)
	FinishRun(ctx context.Context, id int64, outcome state.Outcome, counts map[string]int, errMsg string) error
	CloseJournal(ctx context.Context, runID int64) (int64, error)
	CloseFinishedJournals(ctx context.Context, projectID string) (int64, error)
}

// Watermarks say where the last incremental run of a project left off;
// *state.Store has them.
type Watermarks interface {
	Watermark(ctx context.Context, projectID string) (time.Time, bool, error)
	SetWatermark(ctx context.Context, projectID string, t time.Time) error
	// AdvanceWatermark moves it forward only: a full run ends after
	// incremental runs that read later than it did.
	AdvanceWatermark(ctx context.Context, projectID string, t time.Time) error
}

// Locks takes the project lock that every run holds, and says whether the
// lock session of an earlier run lives on; *state.Store has it.
type Locks interface {
	TryLock(ctx context.Context, projectID string) (*state.Lock, error)
	Lock(ctx context.Context, projectID string) (*state.Lock, error)
	// The full-run lock keeps a project to one full run at a time, which
	// takes the project lock only while it writes (see fullRun).
	TryLockFullRun(ctx context.Context, projectID string) (*state.Lock, error)
	LockFullRun(ctx context.Context, projectID string) (*state.Lock, error)
	FullRunHolder(ctx context.Context, projectID string) (lease.Holder, bool, error)
	LockHolder(ctx context.Context, projectID string) (lease.Holder, bool, error)
	// LockSession and LockOn take the project lock again and again on one
	// session of its own: a full run's, for each batch of its writes.
	LockSession(ctx context.Context) (*lease.Session, error)
	LockOn(ctx context.Context, sess *lease.Session, projectID string) (*state.Lock, error)
	SessionAlive(ctx context.Context, pid int, backendStart time.Time) (bool, error)
}

// Observer is told what runs do, for metrics. All methods must be cheap and
// safe for concurrent use.
type Observer interface {
	RunFinished(kind state.RunKind, outcome state.Outcome, d time.Duration)
	OperationFinished(kind planner.OpKind, status state.Status)
	RowsRejected(n int)
	ChangesDeferred(kind state.RunKind, n int)
	ReadHorizonHeld(d time.Duration)
	LockWaited(d time.Duration)
	SetLockHeld(held bool)
	// EventApplied is told of each processed Sinch event, EventsParked how
	// many are parked after each event run.
	EventApplied(trigger string, lag time.Duration)
	EventsParked(n int)
}

// DefaultOverlap is how far an incremental run reads back before its
// watermark: updated_at is stamped when a CRM transaction writes, not when
// it commits, so a row can appear later with an older timestamp.
const DefaultOverlap = 2 * time.Minute

// Reconciler reads both sides, diffs them and applies the plan. Each of its
// interfaces is the little a run needs of one concern: crm.Reader is its
// CRM, and one state.Store is its Links, Identities, Deferrals, Journal,
// Runs, Watermarks and Locks.
type Reconciler struct {
	CRM        CRM
	Links      Links
	Identities Identities
	Deferrals  Deferrals
	Journal    Journal
	Runs       Runs
	Watermarks Watermarks
	Locks      Locks
	Sinch      SinchAPI
	Logger     *zap.Logger
	Observer   Observer // optional
	// Events is the queue of Sinch contact events that state.RunEvents drains;
	// optional.
	Events      EventQueue
	ProjectID   string
	Source      crm.Source // the CRM relation (crm_contacts) and the filter of the project's rows
	BatchSize   int        // CRM rows per query
	Concurrency int        // Sinch calls in flight, for look-ups and operations
	Options     planner.Options
	Overlap     time.Duration // incremental read-back; DefaultOverlap when zero
	// LogPII shows field values (phone numbers, e-mails) in debug logs.
	LogPII bool
	// OnProgress, when set, is told how a run advances. It is called from
	// several goroutines and must be quick.
	OnProgress func(Progress)
	// LockCheck is how often a run re-checks the project lock on the lock's
	// session (default lease.DefaultCheck): a run stops sending within
	// 2 × LockCheck of losing it.
	LockCheck time.Duration
	// renames are the CRM's renames not yet acted on (NoteRename).
	renames renames
	// LockGrace is how long after taking the lock a runner that finds an
	// earlier run still "running" waits before writing, unless that run's
	// process is known gone: long enough for the earlier process, if it
	// lives on without its lock session, to notice (2 × LockCheck) and for
	// its calls in flight to end (one Sinch attempt's timeout). Default
	// 2 × LockCheck + DefaultCallTimeout.
	LockGrace time.Duration
	// The project's locks this reconciler holds now: a full run's and a
	// partial run's overlap.
	locksMu   stdsync.Mutex
	locksHeld int

	// ScopeBound is how many records and contacts a partial run's scope
	// may grow to around one change before it is deferred to the next full
	// run; DefaultScopeBound when zero.
	ScopeBound int
}

func (r *Reconciler) scopeBound() int {
	if r.ScopeBound > 0 {
		return r.ScopeBound
	}
	return DefaultScopeBound
}

// runBody is what a run does once it holds its lock and is recorded.
type runBody func(ctx context.Context, runID int64, at runTimes) (Report, error)

// runTimes are when a run started, on the database's clock: started, and
// readStart, the point up to which it sees every CRM change (the start held
// back by open CRM transactions, see CRM.ReadHorizon).
type runTimes struct {
	readStart, started time.Time
}

// Progress is how far a run has come.
type Progress struct {
	Phase    string // PhaseReading or PhaseApplying
	CRMRows  int    // rows read from the CRM source
	Contacts int    // Sinch contacts listed or looked up
	Done     int    // operations answered
	Total    int    // operations planned (known once applying)
}

// Phases of a run, as Progress reports them.
const (
	PhaseReading  = "reading"
	PhaseApplying = "applying"
)

// progress keeps the counts a run reports through OnProgress.
type progress struct {
	mu stdsync.Mutex
	p  Progress
	on func(Progress)
}

type progressKey struct{}

// progressOf is the run's progress, carried by its context; nil (which
// reports nothing) outside a run with OnProgress set.
func progressOf(ctx context.Context) *progress {
	pr, _ := ctx.Value(progressKey{}).(*progress)
	return pr
}

func (pr *progress) update(f func(*Progress)) {
	if pr == nil || pr.on == nil {
		return
	}
	pr.mu.Lock()
	f(&pr.p)
	p := pr.p
	pr.mu.Unlock()
	pr.on(p)
}

// Report is the outcome of a run that applied a plan.
type Report struct {
	RunID    int64           `json:"run_id"`
	Kind     state.RunKind   `json:"kind"`
	Outcome  state.Outcome   `json:"outcome"`
	Plan     planner.Plan    `json:"plan"`
	Applied  planner.Summary `json:"applied"`
	Failed   int             `json:"failed"`
	Skipped  int             `json:"skipped"`
	Withheld int             `json:"withheld_deletes"`
	Refused  int             `json:"refused"` // saved operations refused as stale
	Lookups  int             `json:"lookups"`
	// Deferred are the changes a partial run left to the next full run
	// (their scope grew past ScopeBound), queued and noted.
	Deferred int           `json:"deferred"`
	Duration time.Duration `json:"duration_ns"`
	// Rejected are contacts Sinch refused with a 400; the run went on.
	Rejected []planner.Rejection `json:"rejected"`
	Errors   []string            `json:"errors,omitempty"`

	answers []sinch.Contact // contacts as Sinch returned them after the run's writes
}

// add folds the reports of earlier parts of the same run into rep. Their
// operations, rejects and errors come first, in the order of the parts, and
// the contacts they patched are no longer counted as unchanged (the later
// diff saw them fixed). It takes the parts at once so that folding many is
// linear.
func (rep *Report) add(parts ...Report) {
	n := len(rep.Plan.Operations)
	for _, part := range parts {
		n += len(part.Plan.Operations)
	}
	var ops []planner.Operation
	if n > 0 {
		ops = make([]planner.Operation, 0, n) // a full run's early patches: tens of thousands
	}
	var rejected []planner.Rejection
	var errs []string
	for _, part := range parts {
		ops = append(ops, part.Plan.Operations...)
		rejected = append(rejected, part.Rejected...)
		errs = append(errs, part.Errors...)
		rep.Applied.Create += part.Applied.Create
		rep.Applied.Patch += part.Applied.Patch
		rep.Applied.Merge += part.Applied.Merge
		rep.Applied.Delete += part.Applied.Delete
		rep.Plan.Unchanged = max(0, rep.Plan.Unchanged-part.Applied.Patch)
		rep.Failed += part.Failed
		rep.Deferred += part.Deferred
		rep.Skipped += part.Skipped
	}
	rep.Plan.Operations = append(ops, rep.Plan.Operations...)
	rep.Rejected = append(rejected, rep.Rejected...)
	rep.Errors = append(errs, rep.Errors...)
}

// Counts are the report's numbers as stored in the run history.
func (rep Report) Counts() map[string]int {
	s := rep.Plan.Summary()
	return map[string]int{
		"create": rep.Applied.Create, "patch": rep.Applied.Patch, "merge": rep.Applied.Merge, "delete": rep.Applied.Delete,
		"unchanged": s.Unchanged, "rejected": s.Rejected + len(rep.Rejected),
		"failed": rep.Failed, "skipped": rep.Skipped, "withheld_deletes": rep.Withheld, "lookups": rep.Lookups,
		"refused": rep.Refused, "deferred": rep.Deferred,
	}
}

// Run performs one run of the given kind under the project's locks, so
// that two syncd processes never write to one project at once: a partial
// run holds the project lock throughout, a full run the full-run lock
// throughout and the project lock while it writes (see fullRun). Without
// wait, a lock held elsewhere returns an error matching lease.ErrHeld. An
// incremental run with no watermark yet becomes a full one: nothing has
// been synced, only a full run knows what is gone, and it is cheaper than
// looking up every row.
func (r *Reconciler) Run(ctx context.Context, kind state.RunKind, wait bool) (Report, error) {
	switch kind {
	case state.RunFull:
		return r.fullRun(ctx, wait)
	case state.RunIncremental:
		if _, ok, err := r.Watermarks.Watermark(ctx, r.ProjectID); err != nil {
			return Report{Kind: kind}, err
		} else if !ok {
			r.Logger.Info("no watermark yet: running a full reconcile instead of an incremental one")
			return r.fullRun(ctx, wait)
		}
		return r.locked(ctx, kind, wait, r.incremental)
	case state.RunEvents:
		if r.Events == nil {
			return Report{Kind: kind}, errors.New("no event queue")
		}
		// Nothing queued is the common wake-up (events another process
		// took): no lock, no run recorded.
		if pending, err := r.Events.Pending(ctx, r.ProjectID, 1); err != nil || len(pending) == 0 {
			return Report{Kind: kind, Outcome: state.OutcomeSucceeded}, err
		}
		return r.locked(ctx, kind, wait, r.events)
	}
	return Report{Kind: kind}, fmt.Errorf("unknown run kind %q", kind)
}

// locked runs body as a recorded run of kind under the project lock, for
// as long as it runs: every run but a full one (see fullRun).
func (r *Reconciler) locked(ctx context.Context, kind state.RunKind, wait bool, body runBody) (Report, error) {
	take := r.Locks.TryLock
	if wait {
		take = r.Locks.Lock
	}
	rep := Report{Kind: kind}
	err := r.holding(ctx, "lock of project "+r.ProjectID,
		func(ctx context.Context) (*state.Lock, error) { return take(ctx, r.ProjectID) },
		func(ctx context.Context, lock *state.Lock, acquired time.Time) error {
			if err := r.closeInterrupted(ctx, acquired); err != nil {
				return lockLostErr(ctx, err)
			}
			var err error
			rep, err = r.run(ctx, lock, kind, body)
			return err
		})
	return rep, err
}

// holding takes a lock with take, runs fn while it holds it, and lets go
// of it however fn ends. The lock is a lease: it is re-checked on its own
// session every LockCheck (see lease.Lease.Watch), and once it is lost
// fn's context is cancelled with a cause matching lease.ErrLost, so that
// no new Sinch call starts.
func (r *Reconciler) holding(ctx context.Context, name string, take func(ctx context.Context) (*state.Lock, error),
	fn func(ctx context.Context, lock *state.Lock, acquired time.Time) error) error {
	started := time.Now()
	lock, err := take(ctx)
	if err != nil {
		return fmt.Errorf("take the %s: %w", name, err)
	}
	acquired := time.Now()
	r.observer().LockWaited(acquired.Sub(started))
	r.lockHeld(true)
	lctx, stopWatch := lock.Watch(ctx, r.lockCheck())
	defer func() {
		stopWatch()
		r.lockHeld(false)
		releaseCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := lock.Release(releaseCtx); err != nil && !errors.Is(err, lease.ErrLost) {
			r.Logger.Warn("release the "+name, zap.Error(err))
		}
	}()
	return fn(lctx, lock, acquired)
}

func (r *Reconciler) lockCheck() time.Duration {
	if r.LockCheck > 0 {
		return r.LockCheck
	}
	return lease.DefaultCheck
}

// DefaultCallTimeout is the Sinch client's default time per attempt, from
// which LockGrace's default is computed.
const DefaultCallTimeout = 10 * time.Second

func (r *Reconciler) lockGrace() time.Duration {
	if r.LockGrace > 0 {
		return r.LockGrace
	}
	return 2*r.lockCheck() + DefaultCallTimeout
}

// closeInterrupted closes the runs that an earlier holder of the lock left
// "running", and makes sure none of them can still be sending before this
// run writes anything. Holding the lock does not prove them dead: a process
// whose lock session died goes on until its watch notices (within
// 2 × LockCheck) and its calls in flight end. So a run is never closed while
// its lock session lives, and unless its process is known gone, this waits
// until LockGrace after the lock was acquired (the old session let go of it
// before that) and then closes it as interrupted, unless its own process
// recorded its end meanwhile.
//
// Their pending operations need no replay: the next diff reads Sinch afresh
// and finds what they did (a create whose answer was lost shows up by its
// external_id).
func (r *Reconciler) closeInterrupted(ctx context.Context, acquired time.Time) error {
	// Entries finished runs left open: answers they could not record.
	if n, err := r.Runs.CloseFinishedJournals(ctx, r.ProjectID); err != nil {
		return err
	} else if n > 0 {
		r.Logger.Warn("operations of finished runs had no recorded answer: journaled as unknown", zap.Int64("operations", n))
	}
	runs, err := r.Runs.InterruptedRuns(ctx, r.ProjectID)
	if err != nil {
		return err
	}
	if len(runs) == 0 {
		return nil
	}
	// A run whose session holds its lock now is alive and goes on beside
	// this one (a full run beside partial runs, a partial run beside a full
	// one): nothing to close or wait for.
	holding := make(map[int]bool)
	for _, holder := range []func(context.Context, string) (lease.Holder, bool, error){r.Locks.LockHolder, r.Locks.FullRunHolder} {
		h, held, err := holder(ctx, r.ProjectID)
		if err != nil {
			return err
		}
		if held {
			holding[h.PID] = true
		}
	}
	deadline := acquired.Add(r.lockGrace())
	for _, run := range runs {
		fields := []zap.Field{zap.Int64("run_id", run.ID), zap.String("kind", string(run.Kind)),
			zap.String("host", run.Host), zap.Int("pid", run.PID), zap.Int("lock_pid", run.LockPID)}
		if run.LockPID != 0 && holding[run.LockPID] {
			continue
		}
		gone, err := r.sessionGone(ctx, run, deadline)
		if err != nil {
			return err
		}
		if !gone {
			// It cannot hold the lock, since this run does: its watch will
			// stop it within the grace waited out here.
			r.Logger.Warn("an earlier run is still marked running and its lock session lives; leaving it to end itself", fields...)
			continue
		}
		if wait := time.Until(deadline); wait > 0 && !run.ProcessGone() {
			r.Logger.Warn("an earlier run is still marked running; waiting until it cannot be sending before writing",
				append(fields, zap.Duration("grace", wait))...)
			if err := sleepUntil(ctx, deadline); err != nil {
				return err
			}
		}
		r.Logger.Warn("closing a run left unfinished by a stopped process", fields...)
		err = r.Runs.FinishRun(ctx, run.ID, state.OutcomeInterrupted, run.Counts, "the process stopped before the run finished")
		if err != nil && !errors.Is(err, state.ErrRunFinished) {
			return err
		}
		// What it journaled and had no answer for may or may not have
		// reached Sinch; this run's diff reads Sinch afresh and finds out.
		if n, err := r.Runs.CloseJournal(ctx, run.ID); err != nil {
			return err
		} else if n > 0 {
			r.Logger.Warn("operations of the stopped run had no answer: journaled as unknown", append(fields, zap.Int64("operations", n))...)
		}
	}
	return nil
}

// sessionGone waits until the session that held the lock for run has left
// pg_stat_activity, or deadline passes; a backend that has let go of its
// locks can still be listed for a moment while it exits. A run without a
// recorded session counts as gone: nothing is left to look up.
func (r *Reconciler) sessionGone(ctx context.Context, run state.Run, deadline time.Time) (bool, error) {
	if run.LockPID == 0 {
		return true, nil
	}
	poll := time.NewTicker(min(max(r.lockCheck()/10, 10*time.Millisecond), 100*time.Millisecond))
	defer poll.Stop()
	for {
		alive, err := r.Locks.SessionAlive(ctx, run.LockPID, run.LockBackendStart)
		if err != nil || !alive {
			return !alive, err
		}
		if !time.Now().Before(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, context.Cause(ctx)
		case <-poll.C:
		}
	}
}

func sleepUntil(ctx context.Context, t time.Time) error {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-timer.C:
		return nil
	}
}

// lockLostErr says so when err ended a run because its lock was lost.
func lockLostErr(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); err != nil && errors.Is(cause, lease.ErrLost) {
		return fmt.Errorf("the run lost the project lock and stopped sending (another runner may hold it now): %w", cause)
	}
	return err
}

// run records a run in the history around body, and advances the watermark
// to when the run started reading once everything it planned has landed.
func (r *Reconciler) run(ctx context.Context, lock *state.Lock, kind state.RunKind, body runBody) (Report, error) {
	started := time.Now()
	readStart, now, err := r.CRM.ReadHorizon(ctx)
	if err != nil {
		return Report{Kind: kind}, lockLostErr(ctx, err)
	}
	// How far open CRM transactions hold the watermark back: a session left
	// idle in a transaction for hours makes every incremental run re-read
	// hours of changes, and is worth an alert.
	r.observer().ReadHorizonHeld(now.Sub(readStart))
	run, err := lock.StartRun(ctx, kind)
	if err != nil {
		return Report{Kind: kind}, lockLostErr(ctx, fmt.Errorf("record run: %w", err))
	}
	if r.OnProgress != nil {
		ctx = context.WithValue(ctx, progressKey{}, &progress{on: r.OnProgress})
	}
	rep, err := body(ctx, run.ID, runTimes{readStart: readStart, started: now})
	rep.RunID, rep.Kind = run.ID, kind
	rep.Duration = time.Since(started)
	rep.Outcome = outcome(ctx, err, rep)
	err = lockLostErr(ctx, err)
	if err == nil && rep.Outcome == state.OutcomeFailed && errors.Is(context.Cause(ctx), lease.ErrLost) {
		err = lockLostErr(ctx, context.Cause(ctx))
	}

	// The run's own context may be cancelled; its ending is still recorded.
	finishCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	// A full or incremental run saw every change up to readStart; applying
	// a saved plan or processing events says nothing about rows it did not
	// cover.
	if rep.Outcome == state.OutcomeSucceeded && (kind == state.RunFull || kind == state.RunIncremental) {
		set := r.Watermarks.SetWatermark
		if kind == state.RunFull {
			set = r.Watermarks.AdvanceWatermark
		}
		if werr := set(finishCtx, r.ProjectID, readStart); werr != nil {
			err = fmt.Errorf("advance watermark: %w", werr)
			rep.Outcome = state.OutcomeFailed
		}
	}
	errMsg := ""
	if err != nil {
		errMsg = err.Error()
	}
	if ferr := r.Runs.FinishRun(finishCtx, run.ID, rep.Outcome, rep.Counts(), errMsg); ferr != nil && err == nil {
		err = fmt.Errorf("record run outcome: %w", ferr)
	}
	obs := r.observer()
	obs.RunFinished(kind, rep.Outcome, rep.Duration)
	obs.RowsRejected(len(rep.Plan.Rejected) + len(rep.Rejected))
	obs.ChangesDeferred(kind, rep.Deferred)
	fields := []zap.Field{zap.Int64("run_id", run.ID), zap.String("kind", string(kind)), zap.String("outcome", string(rep.Outcome)),
		zap.Duration("duration", rep.Duration), zap.Any("counts", rep.Counts())}
	if err != nil && rep.Outcome != state.OutcomeInterrupted {
		// An interrupted run's error is the interruption itself
		// ("context canceled"): the outcome says it better.
		fields = append(fields, zap.Error(err))
	}
	// The level says how much it matters: a failed run wants someone's
	// attention, withheld deletes a look.
	switch {
	case rep.Outcome == state.OutcomeFailed:
		r.Logger.Error("run finished", fields...)
	case rep.Withheld > 0:
		r.Logger.Warn("run finished", append(fields, zap.String("delete_guard", rep.Plan.DeleteGuard))...)
	default:
		r.Logger.Info("run finished", fields...)
	}
	return rep, err
}

// outcome is how a run ended. One that lost the project lock failed, even if
// everything it sent landed: it stopped before it knew it was done.
func outcome(ctx context.Context, err error, rep Report) state.Outcome {
	switch {
	case errors.Is(context.Cause(ctx), lease.ErrLost):
		return state.OutcomeFailed
	case ctx.Err() != nil:
		return state.OutcomeInterrupted
	case err != nil || rep.Failed > 0:
		return state.OutcomeFailed
	case rep.Refused > 0 && rep.Applied == (planner.Summary{}):
		return state.OutcomeRefused
	default:
		return state.OutcomeSucceeded
	}
}

func (r *Reconciler) observer() Observer {
	if r.Observer == nil {
		return nopObserver{}
	}
	return r.Observer
}

type nopObserver struct{}

func (nopObserver) RunFinished(state.RunKind, state.Outcome, time.Duration) {}
func (nopObserver) OperationFinished(planner.OpKind, state.Status)          {}
func (nopObserver) RowsRejected(int)                                        {}
func (nopObserver) ChangesDeferred(state.RunKind, int)                      {}
func (nopObserver) ReadHorizonHeld(time.Duration)                           {}
func (nopObserver) LockWaited(time.Duration)                                {}
func (nopObserver) SetLockHeld(bool)                                        {}
func (nopObserver) EventApplied(string, time.Duration)                      {}
func (nopObserver) EventsParked(int)                                        {}

// Backfill is a full reconcile under the project lock (see Run).
func (r *Reconciler) Backfill(ctx context.Context, wait bool) (Report, error) {
	return r.Run(ctx, state.RunFull, wait)
}

// IsLocked reports whether err says another runner holds the project lock.
func IsLocked(err error) bool { return errors.Is(err, lease.ErrHeld) }
