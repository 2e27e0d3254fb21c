package sync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/syncd/syncd/state"
)

// EventQueue holds the Sinch contact events still to be processed;
// *state.Events has it.
type EventQueue interface {
	Pending(ctx context.Context, projectID string, limit int) ([]state.StoredEvent, error)
	Done(ctx context.Context, ids []int64, runID int64) error
	Failed(ctx context.Context, ids []int64, errMsg string) error
}

// EventObserver is told about processed events, for metrics; an Observer
// that has it is told.
type EventObserver interface {
	EventApplied(trigger string, lag time.Duration)
}

// Bounds of an event run: events per snapshot, and attempts at an event
// before it is given up on (the next full run is the safety net).
const (
	maxEventBatch    = 500
	maxEventAttempts = 5
)

// events processes the stored events, a batch at a time: each batch is one
// snapshot of the contacts the events name, read afresh, and of the CRM
// records those contacts point at, diffed with the rules of any run and
// applied. Events are triggers, not truth: they come late, twice and out of
// order, and what they say of a contact is never used, only which contacts
// and records to look at. So an echo of syncd's own write costs a read, and
// a stale event finds the contact as it is now.
func (r *Reconciler) events(ctx context.Context, runID int64, _ runTimes) (Report, error) {
	var total Report
	for {
		pending, err := r.Events.Pending(ctx, r.ProjectID, maxEventBatch)
		if err != nil {
			return total, err
		}
		if len(pending) == 0 {
			return total, nil
		}
		rep, err := r.eventBatch(ctx, runID, pending)
		total = joinReports(total, rep)
		ids := make([]int64, len(pending))
		for i, ev := range pending {
			ids[i] = ev.ID
		}
		stateCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		if err != nil || rep.Failed > 0 {
			if ferr := r.giveUpOrRetry(stateCtx, runID, pending, err, rep); ferr != nil {
				err = errors.Join(err, ferr)
			}
			cancel()
			if err == nil {
				err = fmt.Errorf("%d operations failed; the events stay queued", rep.Failed)
			}
			return total, err
		}
		err = r.Events.Done(stateCtx, ids, runID)
		cancel()
		if err != nil {
			return total, err
		}
		r.observeEvents(pending)
		if len(pending) < maxEventBatch {
			return total, nil
		}
	}
}

// joinReports is the report of two batches of one run, earlier first.
func joinReports(earlier, later Report) Report {
	unchanged, lookups, withheld := earlier.Plan.Unchanged+later.Plan.Unchanged, earlier.Lookups+later.Lookups, earlier.Withheld+later.Withheld
	later.add(earlier)
	later.Plan.Unchanged, later.Lookups, later.Withheld = unchanged, lookups, withheld
	return later
}

// giveUpOrRetry leaves failed events queued for the next event run, except
// those tried maxEventAttempts times, which are marked done: retrying them
// for ever would hold the queue, and the next full run finds what they
// were about anyway.
func (r *Reconciler) giveUpOrRetry(ctx context.Context, runID int64, pending []state.StoredEvent, err error, rep Report) error {
	msg := fmt.Sprintf("%d operations failed", rep.Failed)
	if err != nil {
		msg = err.Error()
	}
	var retry, giveUp []int64
	for _, ev := range pending {
		if ev.Attempts+1 >= maxEventAttempts {
			giveUp = append(giveUp, ev.ID)
		} else {
			retry = append(retry, ev.ID)
		}
	}
	if len(giveUp) > 0 {
		r.Logger.Warn("giving up on webhook events after repeated failures; the next full run covers them",
			zap.Int("events", len(giveUp)), zap.String("error", msg))
	}
	return errors.Join(r.Events.Failed(ctx, retry, msg), r.Events.Done(ctx, giveUp, runID))
}

func (r *Reconciler) observeEvents(events []state.StoredEvent) {
	obs, ok := r.Observer.(EventObserver)
	if !ok {
		return
	}
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
