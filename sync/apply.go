package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/syncd/syncd/lease"
	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/state"
)

// Apply sends a plan to Sinch. Every operation is journaled as pending
// before anything is sent and marked with Sinch's answer. Operations on one
// external_id run in plan order (merges before the patch that follows them);
// different external_ids run concurrently. A 400 rejects that contact and the
// run goes on; a failed operation skips the rest of its group.
func (r *Reconciler) Apply(ctx context.Context, runID int64, plan planner.Plan) (Report, error) {
	return r.apply(ctx, runID, plan, applyOpts{})
}

// applyOpts are what a full run asks of apply beyond Apply.
type applyOpts struct {
	// answers keeps in the report the contacts as Sinch returned them
	// (early patches put them back into the index).
	answers bool
	// check checks what cannot be undone against facts read just before
	// it is sent, and skips it when they no longer hold.
	check *fresh
	// skip are operations (by index) not to send, journaled as skipped
	// with the reason given (revalidate).
	skip map[int]string
}

// apply is Apply, with what a full run asks of it.
func (r *Reconciler) apply(ctx context.Context, runID int64, plan planner.Plan, opts applyOpts) (Report, error) {
	answers, check := opts.answers, opts.check
	rep := Report{RunID: runID, Plan: plan}
	if len(plan.Fetch) > 0 {
		return rep, fmt.Errorf("the plan depends on %d contacts not yet read in full; diff again first", len(plan.Fetch))
	}
	if err := plan.CheckGroups(); err != nil {
		return rep, err
	}
	entries := make([]state.JournalEntry, 0, len(plan.Operations)+len(plan.Rejected))
	for i, op := range plan.Operations {
		status, why := state.StatusPending, ""
		switch reason, skip := opts.skip[i]; {
		case plan.DeleteGuard != "" && op.Removes():
			status = state.StatusSkipped
			rep.Withheld++
		case skip:
			status, why = state.StatusSkipped, reason
		}
		sent := op.Sent()
		before, changes, err := journalValues(op, sent)
		if err != nil {
			return rep, fmt.Errorf("journal the plan: %w", err)
		}
		entries = append(entries, state.JournalEntry{
			RunID: runID, Kind: op.Kind, ExternalID: op.ExternalID, ContactID: op.ContactID,
			SourceContactID: op.SourceContactID, UpdateMask: op.UpdateMask, Reason: op.Rule + ": " + op.ExplainSent(sent, true),
			Status: status, Error: why, Contacts: before, Changes: changes,
		})
	}
	for _, rej := range plan.Rejected {
		entries = append(entries, state.JournalEntry{
			RunID: runID, Kind: state.KindReject, ExternalID: rej.ExternalID, Reason: rej.String(), Status: state.StatusRejected,
		})
	}
	if err := r.Journal.JournalAppend(ctx, entries); err != nil {
		return rep, fmt.Errorf("journal the plan: %w", err)
	}

	pr := progressOf(ctx)
	pr.update(func(p *Progress) { p.Phase = PhaseApplying; p.Total += len(plan.Operations) - rep.Withheld })
	results := make([]opResult, len(plan.Operations))
	sendCtx, stopSending := sendContext(ctx)
	defer stopSending()
	g, gctx := errgroup.WithContext(sendCtx)
	marks := r.newMarker(context.WithoutCancel(ctx)) // written in batches, all in before Apply returns
	g.SetLimit(max(1, r.Concurrency))
	for _, group := range plan.Groups {
		if ctx.Err() != nil || gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			for _, i := range group {
				if ctx.Err() != nil || gctx.Err() != nil {
					return nil // stop starting operations
				}
				if entries[i].Status == state.StatusSkipped {
					results[i] = opResult{status: state.StatusSkipped}
					continue
				}
				var res opResult
				if check != nil {
					res = r.precheck(gctx, check, plan.Operations[i])
				}
				if res.status == "" {
					res = r.send(gctx, plan.Operations[i])
				}
				results[i] = res
				marks.mark(entries[i].ID, res)
				pr.update(func(p *Progress) { p.Done++ })
				if sinch.IsAccessDenied(res.err) {
					// Every other call would be refused the same way.
					return res.err
				}
				if res.status != state.StatusDone {
					for _, rest := range group[indexOf(group, i)+1:] {
						if entries[rest].Status != state.StatusSkipped {
							results[rest] = opResult{status: state.StatusSkipped, err: errors.New("an earlier operation on this contact did not succeed")}
							marks.mark(entries[rest].ID, results[rest])
							pr.update(func(p *Progress) { p.Done++ })
						}
					}
					return nil
				}
			}
			return nil
		})
	}
	// Groups report through results; the group error is only a refused key,
	// which stops the rest.
	denied := g.Wait()
	for i := range results {
		if results[i].status == "" && entries[i].Status != state.StatusSkipped {
			why := "not sent: the run stopped first"
			if denied != nil {
				why = "not sent: Sinch refused the credentials"
			}
			results[i] = opResult{status: state.StatusSkipped, err: errors.New(why)}
			marks.mark(entries[i].ID, results[i])
		}
	}
	unrecorded := marks.close()

	save := slices.Clone(plan.Links)
	unlink := slices.Clone(plan.Unlinks)
	obs := r.observer()
	for i, op := range plan.Operations {
		res := results[i]
		if res.status != "" {
			obs.OperationFinished(op.Kind, res.status)
		}
		switch res.status {
		case state.StatusDone:
			rep.Applied.Add(op.Kind)
			if res.answer != nil && answers {
				rep.answers = append(rep.answers, *res.answer)
			}
			if op.Retires != "" {
				unlink = append(unlink, op.Retires)
			}
			switch {
			case op.Removes():
				unlink = append(unlink, op.ExternalID)
			case op.Kind == planner.OpCreate || op.Kind == planner.OpPatch:
				save = append(save, planner.Link{ExternalID: op.ExternalID, ContactID: res.contactID, ContentHash: op.Hash})
			case op.Kind == planner.OpMerge:
				// The destination is the record's contact now. No hash: the
				// patch that may follow has not landed yet, and a hash would
				// tell incremental runs that it had.
				save = append(save, planner.Link{ExternalID: op.ExternalID, ContactID: res.contactID})
			}
		case state.StatusRejected:
			rep.Rejected = append(rep.Rejected, planner.Rejection{ExternalID: op.ExternalID, Column: "sinch", Reason: res.err.Error()})
		case state.StatusFailed:
			rep.Failed++
			rep.Errors = append(rep.Errors, fmt.Sprintf("%s %s: %v", op.Kind, op.ExternalID, res.err))
		case state.StatusUnknown:
			// The run cannot vouch for it, so it does not succeed and the
			// watermark stays: the next run reads Sinch and resolves it.
			rep.Failed++
			rep.Errors = append(rep.Errors, fmt.Sprintf("%s %s: outcome unknown, the next run checks: %v", op.Kind, op.ExternalID, res.err))
		case state.StatusSkipped:
			if !(plan.DeleteGuard != "" && op.Removes()) {
				rep.Skipped++
			}
		}
	}
	stateCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if len(save) > 0 {
		if err := r.Links.SaveLinks(stateCtx, r.ProjectID, save); err != nil {
			return rep, fmt.Errorf("save links: %w", err)
		}
	}
	if len(unlink) > 0 {
		if err := r.Links.DeleteLinks(stateCtx, r.ProjectID, unlink); err != nil {
			return rep, fmt.Errorf("delete links: %w", err)
		}
	}
	if unrecorded != nil {
		rep.Errors = append(rep.Errors, unrecorded.Error())
		return rep, unrecorded
	}
	if denied != nil {
		return rep, denied
	}
	if ctx.Err() != nil {
		return rep, ctx.Err()
	}
	return rep, nil
}

// journalValues are the values the journal keeps of op, as JSON: the
// contacts it removes or changes (op.Before), and what it sets (sent, which
// is op.Sent()).
func journalValues(op planner.Operation, sent []planner.Change) (contacts, changes []byte, err error) {
	if len(op.Before) > 0 {
		if contacts, err = json.Marshal(op.Before); err != nil {
			return nil, nil, err
		}
	}
	if len(sent) > 0 {
		changes = appendChangesJSON(nil, sent)
	}
	return contacts, changes, nil
}

// appendChangesJSON appends changes to b as json.Marshal writes them (the
// journal's changes column), without its reflection: a full run journals
// one create or patch for every ten records or so. It sizes b for them
// first, so that a change's values take one allocation.
func appendChangesJSON(b []byte, changes []planner.Change) []byte {
	need := 2
	for _, c := range changes {
		need += len(`{"field":"","old":"","new":""},`) + len(c.Field) + len(c.Old) + len(c.New)
	}
	b = slices.Grow(b, need)
	b = append(b, '[')
	for i, c := range changes {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"field":`...)
		b = appendJSONString(b, c.Field)
		b = append(b, `,"old":`...)
		b = appendJSONString(b, c.Old)
		b = append(b, `,"new":`...)
		b = appendJSONString(b, c.New)
		b = append(b, '}')
	}
	return append(b, ']')
}

// appendJSONString appends s to b as a JSON string, escaped as
// encoding/json escapes it: quotes, backslashes, control characters, the
// HTML characters <, > and &, U+2028 and U+2029, and invalid UTF-8 as
// U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// sendContext is what the operations a run has started are sent with. A
// shutdown (SIGTERM cancels ctx) lets them finish, retries included, so that
// the journal records Sinch's answers; a lost project lock stops them at
// once, since another runner may be writing by now.
func sendContext(ctx context.Context) (context.Context, context.CancelFunc) {
	sendCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		if cause := context.Cause(ctx); errors.Is(cause, lease.ErrLost) {
			cancel(cause)
		}
	})
	return sendCtx, func() { stop(); cancel(nil) }
}

// precheck runs check on op before it is sent: a result when op is not to
// be sent (skipped, its facts changed; failed, the check could not read
// them), else the zero result.
func (r *Reconciler) precheck(ctx context.Context, check *fresh, op planner.Operation) opResult {
	why, err := check.check(ctx, op)
	switch {
	case err != nil && ctx.Err() != nil:
		return opResult{status: state.StatusSkipped, err: errors.New("not sent: the run stopped first")}
	case err != nil:
		return opResult{status: state.StatusFailed, err: err}
	case why != "":
		r.Logger.Info("operation skipped: what it rests on changed since the run read it",
			zap.String("kind", string(op.Kind)), zap.String("external_id", op.ExternalID),
			zap.String("contact_id", op.ContactID), zap.String("why", why))
		return opResult{status: state.StatusSkipped, err: errors.New(why)}
	}
	return opResult{}
}

type opResult struct {
	status     state.Status
	httpStatus int
	contactID  string
	answer     *sinch.Contact // the contact as Sinch returned it, when it did
	err        error
}

func (r *Reconciler) send(ctx context.Context, op planner.Operation) opResult {
	// Checked first: the fields, and the explanation above all, would be
	// built for every operation even with debug logging off.
	if ce := r.Logger.Check(zap.DebugLevel, "sending operation"); ce != nil {
		ce.Write(zap.String("kind", string(op.Kind)), zap.String("external_id", op.ExternalID),
			zap.String("contact_id", op.ContactID), zap.String("reason", op.Explain(!r.LogPII)))
	}
	var got *sinch.Contact
	var err error
	switch op.Kind {
	case planner.OpCreate:
		got, err = r.Sinch.CreateContact(ctx, *op.Contact)
	case planner.OpPatch:
		got, err = r.Sinch.UpdateContact(ctx, op.ContactID, *op.Contact, op.UpdateMask)
	case planner.OpMerge:
		got, err = r.Sinch.MergeContacts(ctx, op.ContactID, op.SourceContactID)
	case planner.OpDelete:
		err = r.Sinch.DeleteContact(ctx, op.ContactID)
		if sinch.IsNotFound(err) {
			err = nil // already gone: the goal is met
		}
	default:
		err = fmt.Errorf("unknown operation kind %q", op.Kind)
	}
	res := opResult{status: state.StatusDone, contactID: op.ContactID, httpStatus: http.StatusOK}
	if got != nil {
		res.contactID = got.ID
		res.answer = got
	}
	if err != nil {
		res.err = err
		res.status = state.StatusFailed
		res.httpStatus = 0
		var apiErr *sinch.APIError
		if errors.As(err, &apiErr) {
			res.httpStatus = apiErr.HTTPStatus
		}
		switch {
		case op.Kind == planner.OpPatch && sinch.IsNotFound(err):
			// Deleted in Sinch since the run read it: the patch is moot,
			// not failed. The record's link still names the contact, so
			// the next run that weighs the record finds it gone (the GET
			// before a create) and creates it afresh.
			res.status = state.StatusSkipped
			res.err = errors.New("the contact was deleted in Sinch after this run read it; the next run creates the record's contact afresh")
			r.Logger.Info("operation skipped", zap.String("kind", string(op.Kind)), zap.String("external_id", op.ExternalID),
				zap.String("contact_id", op.ContactID), zap.Error(res.err))
			return res
		case errors.Is(err, sinch.ErrOutcomeUnknown), ctx.Err() != nil:
			// Never "rejected" or "failed": the write may have landed. A
			// call cut off by the run's own end (a lost lock) may have
			// reached Sinch before it was; the next run reads Sinch and
			// finds out.
			res.status = state.StatusUnknown
		case res.httpStatus == http.StatusBadRequest:
			res.status = state.StatusRejected
		}
		r.Logger.Warn("operation failed", zap.String("kind", string(op.Kind)), zap.String("external_id", op.ExternalID),
			zap.String("contact_id", op.ContactID), zap.Int("http_status", res.httpStatus), zap.Error(err))
	}
	return res
}

func indexOf(s []int, v int) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}
