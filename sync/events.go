package sync

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/state"
	"github.com/syncd/syncd/webhook"
)

// EventQueue holds the Sinch contact events still to be processed, and
// those set aside; *state.Events has it.
type EventQueue interface {
	// Pending returns the events ready to be processed, oldest first.
	Pending(ctx context.Context, projectID string, limit int) ([]state.StoredEvent, error)
	Done(ctx context.Context, ids []int64, runID int64) error
	// Failed counts a failed attempt; the events wait retryAfter.
	Failed(ctx context.Context, ids []int64, errMsg string, retryAfter time.Duration) error
	// Park counts a last failed attempt and sets the events aside.
	Park(ctx context.Context, ids []int64, reason string) error
	CountParked(ctx context.Context, projectID string) (int, error)
}

// Bounds of an event run: events per snapshot; attempts at an event alone
// before it is parked, the wait after its first failure, which grows
// fourfold with each (30 s, 2 min, 8 min, 32 min, then parked); and the
// failures in a row of events alone that blame Sinch or the database
// rather than the event, after which the run stops (an outage would
// otherwise spend an attempt of every event queued).
const (
	maxEventBatch     = 500
	maxEventAttempts  = 5
	eventRetryFirst   = 30 * time.Second
	maxOutageFailures = 3
)

// events processes the stored events that are ready, a batch at a time.
// An event the journal proves to be the echo of syncd's own write is done
// without a read (skipEchoes). The new others of a batch are one snapshot
// of the contacts they name, read afresh, and of the CRM records those
// contacts point at, diffed with the rules of any run and applied. Events
// are triggers, not truth: they come late, twice and out of order, and
// what they say of a contact is never used, only which contacts and
// records to look at (or, for an echo, that there is nothing to look at).
// So a stale event finds the contact as it is now.
//
// One event that cannot be processed must not take the others down: when
// a batch fails, each of its events is tried alone, and so is every event
// that failed before. An event that fails alone waits (Failed's backoff)
// and, after maxEventAttempts, is parked with its reason until someone
// retries it by hand (`syncd events retry`); the next full run covers what
// it named meanwhile. The run fails when an event did, and says which.
func (r *Reconciler) events(ctx context.Context, runID int64, _ runTimes) (Report, error) {
	var (
		total  Report
		failed []error // of the events that failed alone
		outage int     // failures in a row that blame no event
	)
	defer r.observeParked(ctx)
	for {
		pending, err := r.Events.Pending(ctx, r.ProjectID, maxEventBatch)
		if err != nil {
			return total, err
		}
		if len(pending) == 0 {
			break
		}
		work, err := r.skipEchoes(ctx, runID, pending)
		if err != nil {
			return total, err
		}
		var batch, alone []state.StoredEvent
		for _, ev := range work {
			if ev.Attempts == 0 {
				batch = append(batch, ev)
			} else {
				alone = append(alone, ev)
			}
		}
		if len(batch) == 1 {
			// Its batch is itself: no second attempt.
			alone, batch = append(batch, alone...), nil
		}
		if len(batch) > 0 {
			rep, err := r.eventBatch(ctx, runID, batch)
			switch err = batchErr(rep, err); {
			case err == nil:
				total = joinReports(total, rep)
				if err := r.eventsDone(ctx, batch, runID); err != nil {
					return total, err
				}
			case stopped(ctx, err):
				return joinReports(total, rep), err
			default:
				r.Logger.Warn("a batch of webhook events failed; each is tried alone", zap.Int("events", len(batch)), zap.Error(err))
				// What it applied counts; what failed is tried again with
				// each event alone, whose outcome is the run's.
				rep.Failed = 0
				total = joinReports(total, rep)
				alone = append(batch, alone...)
				slices.SortFunc(alone, func(a, b state.StoredEvent) int { return cmp.Compare(a.ID, b.ID) })
			}
		}
		for _, ev := range alone {
			rep, err := r.eventBatch(ctx, runID, []state.StoredEvent{ev})
			total = joinReports(total, rep)
			switch err = batchErr(rep, err); {
			case err == nil:
				outage = 0
				if err := r.eventsDone(ctx, []state.StoredEvent{ev}, runID); err != nil {
					return total, err
				}
				continue
			case stopped(ctx, err):
				return total, err
			}
			failed = append(failed, fmt.Errorf("event %d (%s): %w", ev.ID, ev.Trigger, err))
			if perr := r.eventFailed(ctx, ev, err); perr != nil {
				return total, errors.Join(perr, eventErrors(failed))
			}
			if blamesEvent(err) {
				outage = 0
			} else if outage++; outage >= maxOutageFailures {
				return total, fmt.Errorf("%d events in a row failed alone for want of Sinch or the database; the others wait for the next event run: %w",
					outage, eventErrors(failed))
			}
		}
		if len(pending) < maxEventBatch {
			break
		}
	}
	if len(failed) > 0 {
		what := fmt.Sprintf("%d events", len(failed))
		if len(failed) == 1 {
			what = "1 event"
		}
		return total, fmt.Errorf("%s could not be processed (retried alone later, then parked): %w", what, eventErrors(failed))
	}
	return total, nil
}

// eventErrors are the failures of events alone, told in one line (the
// run's record keeps it): the first few, and how many more.
type eventErrors []error

func (e eventErrors) Error() string {
	const shown = 3
	msgs := make([]string, 0, shown+1)
	for _, err := range e[:min(len(e), shown)] {
		msgs = append(msgs, err.Error())
	}
	if len(e) > shown {
		msgs = append(msgs, fmt.Sprintf("and %d more", len(e)-shown))
	}
	return strings.Join(msgs, "; ")
}

func (e eventErrors) Unwrap() []error { return e }

// batchErr is what stopped a batch of events: its error, or the operations
// that failed.
func batchErr(rep Report, err error) error {
	if err != nil || rep.Failed == 0 {
		return err
	}
	if len(rep.Errors) > 0 {
		return fmt.Errorf("%d operations failed: %s", rep.Failed, rep.Errors[len(rep.Errors)-1])
	}
	return fmt.Errorf("%d operations failed", rep.Failed)
}

// stopped reports whether err ended the run rather than an event: the
// run's end (a shutdown, a lost lock), or credentials Sinch refuses, which
// every event would meet. Nothing is counted against the events.
func stopped(ctx context.Context, err error) bool {
	return ctx.Err() != nil || sinch.IsAccessDenied(err)
}

// blamesEvent reports whether err is Sinch refusing what the event asked
// for (a 4xx other than 401, 403, 408 and 429: an id it finds malformed,
// say), rather than an outage of Sinch or the database.
func blamesEvent(err error) bool {
	var ae *sinch.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch s := ae.HTTPStatus; s {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusRequestTimeout, http.StatusTooManyRequests:
		return false
	default:
		return s >= 400 && s < 500
	}
}

// eventsDone marks events processed by the run runID.
func (r *Reconciler) eventsDone(ctx context.Context, events []state.StoredEvent, runID int64) error {
	stateCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := r.Events.Done(stateCtx, ids(events), runID); err != nil {
		return err
	}
	r.observeEvents(events)
	return nil
}

// eventFailed records a failed attempt at ev alone: it waits, longer after
// each failure, or is parked after maxEventAttempts.
func (r *Reconciler) eventFailed(ctx context.Context, ev state.StoredEvent, err error) error {
	stateCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	attempts := ev.Attempts + 1
	fields := []zap.Field{zap.Int64("event", ev.ID), zap.String("trigger", ev.Trigger), zap.Int("attempts", attempts), zap.Error(err)}
	if attempts >= maxEventAttempts {
		r.Logger.Error("webhook event parked: it failed alone every time; `syncd events retry` puts it back, the next full run covers what it names", fields...)
		return r.Events.Park(stateCtx, []int64{ev.ID}, err.Error())
	}
	wait := eventRetryFirst << (2 * (attempts - 1))
	r.Logger.Warn("webhook event failed alone; it is tried again later", append(fields, zap.Duration("retry_in", wait))...)
	return r.Events.Failed(stateCtx, []int64{ev.ID}, err.Error(), wait)
}

// observeParked tells the observer how many of the project's events are
// parked.
func (r *Reconciler) observeParked(ctx context.Context) {
	obs := r.observer()
	stateCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	n, err := r.Events.CountParked(stateCtx, r.ProjectID)
	if err != nil {
		r.Logger.Warn("could not count the parked webhook events", zap.Error(err))
		return
	}
	obs.EventsParked(n)
}

func ids(events []state.StoredEvent) []int64 {
	out := make([]int64, len(events))
	for i, ev := range events {
		out[i] = ev.ID
	}
	return out
}

// skipEchoes marks done, with no read at all, the events the journal
// proves to be echoes of syncd's own writes, and returns the others:
//
//   - a CONTACT_CREATE or CONTACT_UPDATE whose contact is exactly the one
//     Sinch answered a done create, patch or merge of that contact with;
//   - a CONTACT_MERGE whose preserved contact is the answer of a done merge
//     of those two contacts;
//   - a CONTACT_DELETE of a contact a done delete removed.
//
// What syncd wrote is what it decided, so there is nothing to look at. A
// forged "echo" is skipped work, never a write: it costs nothing, and a
// real change made since carries another contact, hence another hash.
func (r *Reconciler) skipEchoes(ctx context.Context, runID int64, events []state.StoredEvent) ([]state.StoredEvent, error) {
	hashes := make([]string, len(events))
	var asked, deletes, duplicated []string
	for i, ev := range events {
		switch e := ev.Event; {
		case (e.Trigger == webhook.TriggerCreate || e.Trigger == webhook.TriggerUpdate) && e.Contact != nil:
			hashes[i] = planner.ContactHash(*e.Contact)
		case e.Trigger == webhook.TriggerMerge && e.Preserved != nil && e.Deleted != nil:
			hashes[i] = planner.ContactHash(*e.Preserved)
		case e.Trigger == webhook.TriggerDelete && e.Contact != nil:
			deletes = append(deletes, e.Contact.ID)
		case e.Trigger == webhook.TriggerDuplication:
			duplicated = append(duplicated, e.ContactIDs()...)
		}
		if hashes[i] != "" {
			asked = append(asked, hashes[i])
		}
	}
	if len(asked)+len(deletes)+len(duplicated) == 0 {
		return events, nil
	}
	answers, err := r.Journal.Answers(ctx, r.ProjectID, asked)
	if err != nil {
		return nil, err
	}
	deleted, err := r.Journal.WrittenContacts(ctx, r.ProjectID, deletes, planner.OpDelete)
	if err != nil {
		return nil, err
	}
	// A duplication among contacts that syncd itself wrote, every one, is
	// the planner's own doing (two records holding one identity each get a
	// contact holding it) or a change someone made to one of them since,
	// which arrives as an event of its own.
	written, err := r.Journal.WrittenContacts(ctx, r.ProjectID, duplicated, planner.OpCreate, planner.OpPatch, planner.OpMerge)
	if err != nil {
		return nil, err
	}
	byHash := make(map[string][]state.Answer, len(answers))
	for _, a := range answers {
		byHash[a.Hash] = append(byHash[a.Hash], a)
	}
	var echoes, rest []state.StoredEvent
	for i, ev := range events {
		e := ev.Event
		echo := false
		switch {
		case hashes[i] != "" && e.Trigger == webhook.TriggerMerge:
			echo = slices.ContainsFunc(byHash[hashes[i]], func(a state.Answer) bool {
				return a.Kind == planner.OpMerge && a.ContactID == e.Preserved.ID && a.SourceContactID == e.Deleted.ID
			})
		case hashes[i] != "":
			echo = slices.ContainsFunc(byHash[hashes[i]], func(a state.Answer) bool { return a.ContactID == e.Contact.ID })
		case e.Trigger == webhook.TriggerDelete && e.Contact != nil:
			echo = slices.Contains(deleted, e.Contact.ID)
		case e.Trigger == webhook.TriggerDuplication:
			ids := e.ContactIDs()
			echo = len(ids) > 0 && !slices.ContainsFunc(ids, func(id string) bool { return !slices.Contains(written, id) })
		}
		if echo {
			echoes = append(echoes, ev)
		} else {
			rest = append(rest, ev)
		}
	}
	if len(echoes) == 0 {
		return rest, nil
	}
	stateCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := r.Events.Done(stateCtx, ids(echoes), runID); err != nil {
		return nil, err
	}
	r.Logger.Debug("events recognised as echoes of syncd's own writes, from the journal: no read", zap.Int("events", len(echoes)))
	r.observeEvents(echoes)
	return rest, nil
}

// joinReports is the report of two batches of one run, earlier first.
func joinReports(earlier, later Report) Report {
	unchanged, lookups, withheld := earlier.Plan.Unchanged+later.Plan.Unchanged, earlier.Lookups+later.Lookups, earlier.Withheld+later.Withheld
	later.add(earlier)
	later.Plan.Unchanged, later.Lookups, later.Withheld = unchanged, lookups, withheld
	return later
}

func (r *Reconciler) observeEvents(events []state.StoredEvent) {
	obs := r.observer()
	now := time.Now()
	for _, ev := range events {
		var lag time.Duration
		if !ev.EventTime.IsZero() {
			lag = now.Sub(ev.EventTime)
		}
		obs.EventApplied(ev.Trigger, lag)
	}
}

// named is what a batch of events points at: the contacts they name, and
// the external_ids their payloads carried, as hints of records to read;
// and what they named past maxEventContacts each, left to the full run.
type named struct {
	contacts []string
	external []string
	deferred []state.Deferral
}

// maxEventContacts bounds the contacts one event may have a run read: a
// CONTACT_IDENTITIES_DUPLICATION can name tens of thousands, and one
// event must not hold the queue for minutes. The rest is left to the full
// run, counted as deferred.
const maxEventContacts = 50

func namedBy(events []state.StoredEvent) named {
	var n named
	for _, ev := range events {
		ids := ev.Event.ContactIDs()
		if len(ids) > maxEventContacts {
			for _, id := range ids[maxEventContacts:] {
				n.deferred = append(n.deferred, state.Deferral{Kind: state.DeferContact, Key: id,
					Reason: fmt.Sprintf("a %s event named %d contacts; past the first %d they are left to the full run", ev.Event.Trigger, len(ids), maxEventContacts)})
			}
			ids = ids[:maxEventContacts]
		}
		n.contacts = append(n.contacts, ids...)
		n.external = append(n.external, ev.Event.ExternalIDs()...)
	}
	return n
}

// eventBatch reconciles what one batch of events names: the contacts and
// records it points at and everything connected to them (partialScope),
// read afresh, with the rules of any run. What an event says of a contact
// is never used, only which contacts and records to read: after a merge,
// the record linked to the deleted contact is found again through the
// contact that now carries its external_id or holds its identities, as a
// full run would find it.
func (r *Reconciler) eventBatch(ctx context.Context, runID int64, events []state.StoredEvent) (Report, error) {
	n := namedBy(events)
	contacts, err := r.notDeferred(ctx, state.DeferContact, n.contacts, nil)
	if err != nil {
		return Report{}, err
	}
	records, err := r.notDeferred(ctx, state.DeferRecord, n.external, nil)
	if err != nil {
		return Report{}, err
	}
	if len(contacts)+len(records) == 0 && len(n.deferred) == 0 {
		return Report{}, nil
	}
	scope := &partialScope{r: r, contacts: contacts, records: records, deferred: n.deferred}
	plan, _, reads, err := r.plan(ctx, scope)
	if err != nil {
		return Report{Lookups: reads}, err
	}
	return r.applyPartial(ctx, runID, plan, reads, scope)
}
