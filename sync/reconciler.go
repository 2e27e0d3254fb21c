package sync

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/sinch"
)

// SinchAPI is what the reconciler needs from Sinch; *sinch.Client has it.
type SinchAPI interface {
	Pages(ctx context.Context, req sinch.ListContactsRequest) iter.Seq2[[]sinch.Contact, error]
	CreateContact(ctx context.Context, c sinch.Contact) (*sinch.Contact, error)
	UpdateContact(ctx context.Context, id string, body sinch.Contact, mask []string) (*sinch.Contact, error)
	DeleteContact(ctx context.Context, id string) error
	MergeContacts(ctx context.Context, destinationID, sourceID string) (*sinch.Contact, error)
}

// Store is what the reconciler needs from PostgreSQL: the CRM source and
// syncd's own state. *crm.Store has it.
type Store interface {
	Records(ctx context.Context, source string, batchSize int) iter.Seq2[[]crm.Record, error]
	Links(ctx context.Context, projectID string) (map[string]crm.Link, error)
	SaveLinks(ctx context.Context, projectID string, links []crm.Link) error
	DeleteLinks(ctx context.Context, projectID string, externalIDs []string) error
	StartRun(ctx context.Context, projectID, kind string) (crm.Run, error)
	FinishRun(ctx context.Context, id int64, outcome string, counts map[string]int, errMsg string) error
	JournalAppend(ctx context.Context, entries []crm.JournalEntry) error
	JournalMark(ctx context.Context, id int64, status string, httpStatus int, errMsg, contactID string) error
}

// Run kinds and outcomes, as stored in the run history.
const (
	RunFull = "full"

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
)

// Reconciler reads both sides, diffs them and applies the plan.
type Reconciler struct {
	Store       Store
	Sinch       SinchAPI
	Logger      *zap.Logger
	ProjectID   string
	Source      string // the CRM relation, e.g. crm_contacts
	BatchSize   int    // CRM rows per query
	Concurrency int    // groups of operations applied at once
	Options     Options
}

// Fetch reads the whole CRM source and every Sinch contact. The two sides
// are read at the same time: the Sinch list is a sequential chain of pages
// and is what a full run waits on.
func (r *Reconciler) Fetch(ctx context.Context) (Snapshot, error) {
	snap := Snapshot{Complete: true, Source: r.Source}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		for batch, err := range r.Store.Records(gctx, r.Source, r.BatchSize) {
			var rowErr *crm.RowError
			if errors.As(err, &rowErr) {
				snap.Unreadable = append(snap.Unreadable, Rejection{ExternalID: rowErr.ExternalID, Column: rowErr.Column, Reason: rowErr.Err.Error()})
				continue
			}
			if err != nil {
				return fmt.Errorf("read CRM source %s: %w", r.Source, err)
			}
			snap.Records = append(snap.Records, batch...)
		}
		return nil
	})
	g.Go(func() error {
		for page, err := range r.Sinch.Pages(gctx, sinch.ListContactsRequest{PageSize: sinch.MaxPageSize}) {
			if err != nil {
				return fmt.Errorf("list Sinch contacts: %w", err)
			}
			snap.Contacts = append(snap.Contacts, page...)
		}
		return nil
	})
	g.Go(func() error {
		links, err := r.Store.Links(gctx, r.ProjectID)
		if err != nil {
			return fmt.Errorf("read links: %w", err)
		}
		snap.Links = links
		return nil
	})
	return snap, g.Wait()
}

// Plan is a dry run: it fetches both sides and diffs them, writing nothing.
func (r *Reconciler) Plan(ctx context.Context) (Plan, error) {
	snap, err := r.Fetch(ctx)
	if err != nil {
		return Plan{}, err
	}
	return Diff(snap, r.Options), nil
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
	Duration time.Duration `json:"duration_ns"`
	// Rejected are contacts Sinch refused with a 400; the run went on.
	Rejected []Rejection `json:"rejected"`
	Errors   []string    `json:"errors,omitempty"`
}

// Counts are the report's numbers as stored in the run history.
func (rep Report) Counts() map[string]int {
	s := rep.Plan.Summary()
	return map[string]int{
		"create": rep.Applied.Create, "patch": rep.Applied.Patch, "merge": rep.Applied.Merge, "delete": rep.Applied.Delete,
		"unchanged": s.Unchanged, "rejected": s.Rejected + len(rep.Rejected),
		"failed": rep.Failed, "skipped": rep.Skipped, "withheld_deletes": rep.Withheld,
	}
}

// Backfill is a full reconcile: it records a run, fetches, diffs, journals
// the plan and applies it.
func (r *Reconciler) Backfill(ctx context.Context) (Report, error) {
	started := time.Now()
	run, err := r.Store.StartRun(ctx, r.ProjectID, RunFull)
	if err != nil {
		return Report{}, fmt.Errorf("record run: %w", err)
	}
	rep := Report{RunID: run.ID, Kind: RunFull}
	plan, err := r.Plan(ctx)
	if err == nil {
		rep, err = r.Apply(ctx, run.ID, plan)
		rep.Kind = RunFull
	}
	rep.Duration = time.Since(started)
	rep.Outcome = outcome(ctx, err, rep)

	// The run's own context may be cancelled; its ending is still recorded.
	finishCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	errMsg := ""
	if err != nil {
		errMsg = err.Error()
	}
	if ferr := r.Store.FinishRun(finishCtx, run.ID, rep.Outcome, rep.Counts(), errMsg); ferr != nil && err == nil {
		err = fmt.Errorf("record run outcome: %w", ferr)
	}
	r.Logger.Info("run finished",
		zap.Int64("run_id", run.ID), zap.String("kind", rep.Kind), zap.String("outcome", rep.Outcome),
		zap.Duration("duration", rep.Duration), zap.Any("counts", rep.Counts()))
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

// Apply sends a plan to Sinch. Every operation is journaled as pending
// before anything is sent and marked with Sinch's answer. Operations on one
// external_id run in plan order (merges before the patch that follows them);
// different external_ids run concurrently. A 400 rejects that contact and the
// run goes on; a failed operation skips the rest of its group.
func (r *Reconciler) Apply(ctx context.Context, runID int64, plan Plan) (Report, error) {
	rep := Report{RunID: runID, Plan: plan}
	entries := make([]crm.JournalEntry, 0, len(plan.Operations)+len(plan.Rejected))
	for _, op := range plan.Operations {
		status := StatusPending
		if plan.DeleteGuard != "" && op.Removes() {
			status = StatusSkipped
			rep.Withheld++
		}
		entries = append(entries, crm.JournalEntry{
			RunID: runID, Kind: string(op.Kind), ExternalID: op.ExternalID, ContactID: op.ContactID,
			SourceContactID: op.SourceContactID, UpdateMask: op.UpdateMask, Reason: op.Rule + ": " + op.Explain(true),
			Status: status,
		})
	}
	for _, rej := range plan.Rejected {
		entries = append(entries, crm.JournalEntry{
			RunID: runID, Kind: "reject", ExternalID: rej.ExternalID, Reason: rej.String(), Status: StatusRejected,
		})
	}
	if err := r.Store.JournalAppend(ctx, entries); err != nil {
		return rep, fmt.Errorf("journal the plan: %w", err)
	}

	results := make([]opResult, len(plan.Operations))
	g, gctx := errgroup.WithContext(context.WithoutCancel(ctx))
	g.SetLimit(max(1, r.Concurrency))
	for _, group := range groupByExternalID(plan.Operations) {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			for _, i := range group {
				if ctx.Err() != nil {
					return nil // stop starting operations; the journal keeps them pending
				}
				if entries[i].Status == StatusSkipped {
					results[i] = opResult{status: StatusSkipped}
					continue
				}
				res := r.send(gctx, plan.Operations[i])
				results[i] = res
				r.mark(gctx, entries[i].ID, res)
				if res.status != StatusDone {
					for _, rest := range group[indexOf(group, i)+1:] {
						if entries[rest].Status != StatusSkipped {
							results[rest] = opResult{status: StatusSkipped, err: errors.New("an earlier operation on this contact did not succeed")}
							r.mark(gctx, entries[rest].ID, results[rest])
						}
					}
					return nil
				}
			}
			return nil
		})
	}
	_ = g.Wait() // groups report through results, never through the group error

	var save []crm.Link
	var unlink []string
	for _, l := range plan.Links {
		save = append(save, crm.Link{ExternalID: l.ExternalID, ContactID: l.ContactID, ContentHash: l.Hash})
	}
	for i, op := range plan.Operations {
		res := results[i]
		switch res.status {
		case StatusDone:
			rep.Applied.add(op.Kind)
			switch {
			case op.Removes():
				unlink = append(unlink, op.ExternalID)
			case op.Kind == OpCreate || op.Kind == OpPatch:
				save = append(save, crm.Link{ExternalID: op.ExternalID, ContactID: res.contactID, ContentHash: op.Hash})
			}
		case StatusRejected:
			rep.Rejected = append(rep.Rejected, Rejection{ExternalID: op.ExternalID, Column: "sinch", Reason: res.err.Error()})
		case StatusFailed:
			rep.Failed++
			rep.Errors = append(rep.Errors, fmt.Sprintf("%s %s: %v", op.Kind, op.ExternalID, res.err))
		case StatusSkipped:
			if !(plan.DeleteGuard != "" && op.Removes()) {
				rep.Skipped++
			}
		case "":
			rep.Skipped++ // never started: the run was interrupted
		}
	}
	stateCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if len(save) > 0 {
		if err := r.Store.SaveLinks(stateCtx, r.ProjectID, save); err != nil {
			return rep, fmt.Errorf("save links: %w", err)
		}
	}
	if len(unlink) > 0 {
		if err := r.Store.DeleteLinks(stateCtx, r.ProjectID, unlink); err != nil {
			return rep, fmt.Errorf("delete links: %w", err)
		}
	}
	if ctx.Err() != nil {
		return rep, ctx.Err()
	}
	return rep, nil
}

type opResult struct {
	status     string
	httpStatus int
	contactID  string
	err        error
}

func (r *Reconciler) send(ctx context.Context, op Operation) opResult {
	var got *sinch.Contact
	var err error
	switch op.Kind {
	case OpCreate:
		got, err = r.Sinch.CreateContact(ctx, *op.Contact)
	case OpPatch:
		got, err = r.Sinch.UpdateContact(ctx, op.ContactID, *op.Contact, op.UpdateMask)
	case OpMerge:
		got, err = r.Sinch.MergeContacts(ctx, op.ContactID, op.SourceContactID)
	case OpDelete:
		err = r.Sinch.DeleteContact(ctx, op.ContactID)
		if sinch.IsNotFound(err) {
			err = nil // already gone: the goal is met
		}
	default:
		err = fmt.Errorf("unknown operation kind %q", op.Kind)
	}
	res := opResult{status: StatusDone, contactID: op.ContactID, httpStatus: http.StatusOK}
	if got != nil {
		res.contactID = got.ID
	}
	if err != nil {
		res.err = err
		res.status = StatusFailed
		res.httpStatus = 0
		var apiErr *sinch.APIError
		if errors.As(err, &apiErr) {
			res.httpStatus = apiErr.HTTPStatus
			if apiErr.HTTPStatus == http.StatusBadRequest {
				res.status = StatusRejected
			}
		}
		r.Logger.Warn("operation failed", zap.String("kind", string(op.Kind)), zap.String("external_id", op.ExternalID),
			zap.String("contact_id", op.ContactID), zap.Int("http_status", res.httpStatus), zap.Error(err))
	}
	return res
}

func (r *Reconciler) mark(ctx context.Context, id int64, res opResult) {
	msg := ""
	if res.err != nil {
		msg = res.err.Error()
	}
	if err := r.Store.JournalMark(ctx, id, res.status, res.httpStatus, msg, res.contactID); err != nil {
		r.Logger.Error("journal mark failed", zap.Int64("journal_id", id), zap.Error(err))
	}
}

// groupByExternalID keeps plan order inside each group.
func groupByExternalID(ops []Operation) [][]int {
	at := make(map[string]int)
	var groups [][]int
	for i, op := range ops {
		g, ok := at[op.ExternalID]
		if !ok {
			g = len(groups)
			at[op.ExternalID] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	return groups
}

func indexOf(s []int, v int) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}
