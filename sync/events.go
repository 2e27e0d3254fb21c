package sync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/state"
	"github.com/syncd/syncd/webhook"
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

// events processes the stored events, a batch at a time. An event the
// journal proves to be the echo of syncd's own write is done without a
// read (skipEchoes). The others of a batch are one snapshot of the contacts
// they name, read afresh, and of the CRM records those contacts point at,
// diffed with the rules of any run and applied. Events are triggers, not
// truth: they come late, twice and out of order, and what they say of a
// contact is never used, only which contacts and records to look at (or,
// for an echo, that there is nothing to look at). So a stale event finds
// the contact as it is now.
func (r *Reconciler) events(ctx context.Context, runID int64, _ time.Time) (Report, error) {
	var total Report
	for {
		pending, err := r.Events.Pending(ctx, r.ProjectID, maxEventBatch)
		if err != nil {
			return total, err
		}
		if len(pending) == 0 {
			return total, nil
		}
		work, err := r.skipEchoes(ctx, runID, pending)
		if err != nil {
			return total, err
		}
		if len(work) > 0 {
			rep, err := r.eventBatch(ctx, runID, work)
			total = joinReports(total, rep)
			stateCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			if err != nil || rep.Failed > 0 {
				if ferr := r.giveUpOrRetry(stateCtx, runID, work, err, rep); ferr != nil {
					err = errors.Join(err, ferr)
				}
				cancel()
				if err == nil {
					err = fmt.Errorf("%d operations failed; the events stay queued", rep.Failed)
				}
				return total, err
			}
			err = r.Events.Done(stateCtx, ids(work), runID)
			cancel()
			if err != nil {
				return total, err
			}
			r.observeEvents(work)
		}
		if len(pending) < maxEventBatch {
			return total, nil
		}
	}
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
	var asked, deletes []string
	for i, ev := range events {
		switch e := ev.Event; {
		case (e.Trigger == webhook.TriggerCreate || e.Trigger == webhook.TriggerUpdate) && e.Contact != nil:
			hashes[i] = planner.ContactHash(*e.Contact)
		case e.Trigger == webhook.TriggerMerge && e.Preserved != nil && e.Deleted != nil:
			hashes[i] = planner.ContactHash(*e.Preserved)
		case e.Trigger == webhook.TriggerDelete && e.Contact != nil:
			deletes = append(deletes, e.Contact.ID)
		}
		if hashes[i] != "" {
			asked = append(asked, hashes[i])
		}
	}
	if len(asked)+len(deletes) == 0 {
		return events, nil
	}
	answers, err := r.Journal.Answers(ctx, r.ProjectID, asked)
	if err != nil {
		return nil, err
	}
	deleted, err := r.Journal.DeletedContacts(ctx, r.ProjectID, deletes)
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
