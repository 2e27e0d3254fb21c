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
	"github.com/syncd/syncd/sinch"
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

// Store is what the reconciler needs from PostgreSQL: the CRM source and
// syncd's own state. *crm.Store has it.
type Store interface {
	Records(ctx context.Context, source string, batchSize int) iter.Seq2[[]crm.Record, error]
	RecordsByExternalID(ctx context.Context, source string, ids []string) ([]crm.Record, error)
	ChangedSince(ctx context.Context, source string, since time.Time, batchSize int) iter.Seq2[[]crm.Record, error]
	ReadHorizon(ctx context.Context) (time.Time, error)
	Watermark(ctx context.Context, projectID string) (time.Time, bool, error)
	SetWatermark(ctx context.Context, projectID string, t time.Time) error
	Links(ctx context.Context, projectID string) (map[string]crm.Link, error)
	EachLink(ctx context.Context, projectID string, fn func(crm.Link)) error
	VanishedLinks(ctx context.Context, projectID, source string) ([]crm.Link, error)
	SaveLinks(ctx context.Context, projectID string, links []crm.Link) error
	DeleteLinks(ctx context.Context, projectID string, externalIDs []string) error
	StartRun(ctx context.Context, projectID, kind string) (crm.Run, error)
	FinishRun(ctx context.Context, id int64, outcome string, counts map[string]int, errMsg string) error
	InterruptedRuns(ctx context.Context, projectID string) ([]crm.Run, error)
	JournalAppend(ctx context.Context, entries []crm.JournalEntry) error
	JournalMark(ctx context.Context, id int64, status string, httpStatus int, errMsg, contactID string) error
	TryLock(ctx context.Context, projectID string) (*crm.Lock, error)
	Lock(ctx context.Context, projectID string) (*crm.Lock, error)
}

// Observer is told what runs do, for metrics. All methods must be cheap and
// safe for concurrent use.
type Observer interface {
	RunFinished(kind, outcome string, d time.Duration)
	OperationFinished(kind, status string)
	RowsRejected(n int)
	LockWaited(d time.Duration)
	SetLockHeld(held bool)
}

// Run kinds and outcomes, as stored in the run history.
const (
	RunFull        = "full"
	RunIncremental = "incremental"
	RunApply       = "apply" // a saved plan

	OutcomeRunning     = "running"
	OutcomeSucceeded   = "succeeded"
	OutcomeFailed      = "failed"
	OutcomeInterrupted = "interrupted"
)

// Journal statuses.
const (
	StatusPending  = "pending"
	StatusDone     = "done"
	StatusFailed   = "failed"
	StatusSkipped  = "skipped"
	StatusRejected = "rejected"
	// StatusUnknown is an operation whose answer was lost in a way that
	// leaves open whether Sinch applied it; the next run reads Sinch afresh
	// and finds out.
	StatusUnknown = "unknown"
)

// DefaultOverlap is how far an incremental run reads back before its
// watermark: updated_at is stamped when a CRM transaction writes, not when
// it commits, so a row can appear later with an older timestamp.
const DefaultOverlap = 2 * time.Minute

// Reconciler reads both sides, diffs them and applies the plan.
type Reconciler struct {
	Store       Store
	Sinch       SinchAPI
	Logger      *zap.Logger
	Observer    Observer // optional
	ProjectID   string
	Source      string // the CRM relation, e.g. crm_contacts
	BatchSize   int    // CRM rows per query
	Concurrency int    // Sinch calls in flight, for look-ups and operations
	Options     Options
	Overlap     time.Duration // incremental read-back; DefaultOverlap when zero
	// LogPII shows field values (phone numbers, e-mails) in debug logs.
	LogPII bool
	// OnProgress, when set, is told how a run advances. It is called from
	// several goroutines and must be quick.
	OnProgress func(Progress)
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
	RunID    int64         `json:"run_id"`
	Kind     string        `json:"kind"`
	Outcome  string        `json:"outcome"`
	Plan     Plan          `json:"plan"`
	Applied  Summary       `json:"applied"`
	Failed   int           `json:"failed"`
	Skipped  int           `json:"skipped"`
	Withheld int           `json:"withheld_deletes"`
	Lookups  int           `json:"lookups"`
	Duration time.Duration `json:"duration_ns"`
	// Rejected are contacts Sinch refused with a 400; the run went on.
	Rejected []Rejection `json:"rejected"`
	Errors   []string    `json:"errors,omitempty"`

	answers []sinch.Contact // contacts as Sinch returned them after the run's writes
}

// add folds the reports of earlier parts of the same run into rep. Their
// operations, rejects and errors come first, in the order of the parts, and
// the contacts they patched are no longer counted as unchanged (the later
// diff saw them fixed). It takes the parts at once so that folding many is
// linear.
func (rep *Report) add(parts ...Report) {
	var ops []Operation
	var rejected []Rejection
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
	}
}

// Run performs one run of the given kind while holding the project's lock,
// so that two syncd processes never reconcile one project at once. Without
// wait, a lock held elsewhere returns an error matching crm.ErrLocked.
func (r *Reconciler) Run(ctx context.Context, kind string, wait bool) (Report, error) {
	switch kind {
	case RunFull:
		return r.locked(ctx, kind, wait, r.full)
	case RunIncremental:
		return r.locked(ctx, kind, wait, r.incremental)
	}
	return Report{Kind: kind}, fmt.Errorf("unknown run kind %q", kind)
}

// locked runs body as a recorded run of kind under the project lock. An
// incremental run with no watermark yet becomes a full one: nothing has been
// synced, only a full run knows what is gone, and it is cheaper than looking
// up every row.
func (r *Reconciler) locked(ctx context.Context, kind string, wait bool, body func(context.Context, int64) (Report, error)) (Report, error) {
	started := time.Now()
	var lock *crm.Lock
	var err error
	if wait {
		lock, err = r.Store.Lock(ctx, r.ProjectID)
	} else {
		lock, err = r.Store.TryLock(ctx, r.ProjectID)
	}
	if err != nil {
		return Report{Kind: kind}, fmt.Errorf("take the lock of project %s: %w", r.ProjectID, err)
	}
	r.observer().LockWaited(time.Since(started))
	r.observer().SetLockHeld(true)
	defer func() {
		r.observer().SetLockHeld(false)
		releaseCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := lock.Release(releaseCtx); err != nil {
			r.Logger.Warn("release project lock", zap.Error(err))
		}
	}()
	if err := r.closeInterrupted(ctx); err != nil {
		return Report{Kind: kind}, err
	}
	if kind == RunIncremental {
		if _, ok, err := r.Store.Watermark(ctx, r.ProjectID); err != nil {
			return Report{Kind: kind}, err
		} else if !ok {
			r.Logger.Info("no watermark yet: running a full reconcile instead of an incremental one")
			kind, body = RunFull, r.full
		}
	}
	return r.run(ctx, kind, body)
}

// closeInterrupted records runs that a killed process left "running". The
// caller holds the lock, so no such run is still alive. Their pending
// operations need no replay: the next diff reads Sinch afresh and finds what
// they did (a create whose answer was lost shows up by its external_id).
func (r *Reconciler) closeInterrupted(ctx context.Context) error {
	runs, err := r.Store.InterruptedRuns(ctx, r.ProjectID)
	if err != nil {
		return err
	}
	for _, run := range runs {
		r.Logger.Warn("closing a run left unfinished by a stopped process", zap.Int64("run_id", run.ID),
			zap.String("kind", run.Kind), zap.String("host", run.Host), zap.Int("pid", run.PID))
		if err := r.Store.FinishRun(ctx, run.ID, OutcomeInterrupted, run.Counts, "the process stopped before the run finished"); err != nil {
			return err
		}
	}
	return nil
}

// run records a run in the history around body, and advances the watermark
// to when the run started reading once everything it planned has landed.
func (r *Reconciler) run(ctx context.Context, kind string, body func(context.Context, int64) (Report, error)) (Report, error) {
	started := time.Now()
	readStart, err := r.Store.ReadHorizon(ctx)
	if err != nil {
		return Report{Kind: kind}, err
	}
	run, err := r.Store.StartRun(ctx, r.ProjectID, kind)
	if err != nil {
		return Report{Kind: kind}, fmt.Errorf("record run: %w", err)
	}
	if r.OnProgress != nil {
		ctx = context.WithValue(ctx, progressKey{}, &progress{on: r.OnProgress})
	}
	rep, err := body(ctx, run.ID)
	rep.RunID, rep.Kind = run.ID, kind
	rep.Duration = time.Since(started)
	rep.Outcome = outcome(ctx, err, rep)

	// The run's own context may be cancelled; its ending is still recorded.
	finishCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	// A full or incremental run saw every change up to readStart; applying
	// a saved plan says nothing about rows it did not cover.
	if rep.Outcome == OutcomeSucceeded && kind != RunApply {
		if werr := r.Store.SetWatermark(finishCtx, r.ProjectID, readStart); werr != nil {
			err = fmt.Errorf("advance watermark: %w", werr)
			rep.Outcome = OutcomeFailed
		}
	}
	errMsg := ""
	if err != nil {
		errMsg = err.Error()
	}
	if ferr := r.Store.FinishRun(finishCtx, run.ID, rep.Outcome, rep.Counts(), errMsg); ferr != nil && err == nil {
		err = fmt.Errorf("record run outcome: %w", ferr)
	}
	obs := r.observer()
	obs.RunFinished(kind, rep.Outcome, rep.Duration)
	obs.RowsRejected(len(rep.Plan.Rejected) + len(rep.Rejected))
	fields := []zap.Field{zap.Int64("run_id", run.ID), zap.String("kind", kind), zap.String("outcome", rep.Outcome),
		zap.Duration("duration", rep.Duration), zap.Any("counts", rep.Counts())}
	if err != nil {
		fields = append(fields, zap.Error(err))
	}
	r.Logger.Info("run finished", fields...)
	return rep, err
}

func outcome(ctx context.Context, err error, rep Report) string {
	switch {
	case ctx.Err() != nil:
		return OutcomeInterrupted
	case err != nil || rep.Failed > 0:
		return OutcomeFailed
	default:
		return OutcomeSucceeded
	}
}

func (r *Reconciler) observer() Observer {
	if r.Observer == nil {
		return nopObserver{}
	}
	return r.Observer
}

type nopObserver struct{}

func (nopObserver) RunFinished(string, string, time.Duration) {}
func (nopObserver) OperationFinished(string, string)          {}
func (nopObserver) RowsRejected(int)                          {}
func (nopObserver) LockWaited(time.Duration)                  {}
func (nopObserver) SetLockHeld(bool)                          {}

// Backfill is a full reconcile under the project lock (see Run).
func (r *Reconciler) Backfill(ctx context.Context, wait bool) (Report, error) {
	return r.Run(ctx, RunFull, wait)
}

// IsLocked reports whether err says another runner holds the project lock.
func IsLocked(err error) bool { return errors.Is(err, crm.ErrLocked) }
