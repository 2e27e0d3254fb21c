package sync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/webhook"
)

// RunEvents is a run that processes the stored Sinch contact events.
const RunEvents = crm.RunEvents

// EventQueue holds the Sinch contact events still to be processed;
// *webhook.Store has it.
type EventQueue interface {
	Pending(ctx context.Context, projectID string, limit int) ([]webhook.StoredEvent, error)
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
func (r *Reconciler) events(ctx context.Context, runID int64) (Report, error) {
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
func (r *Reconciler) giveUpOrRetry(ctx context.Context, runID int64, pending []webhook.StoredEvent, err error, rep Report) error {
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

func (r *Reconciler) observeEvents(events []webhook.StoredEvent) {
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

// named is what a batch of events points at.
type named struct {
	contacts []string // contact ids
	external []string // external_ids the payloads carried: hints only
	// merged maps the deleted contact of each merge to the preserved one.
	merged map[string]string
}

func namedBy(events []webhook.StoredEvent) named {
	n := named{merged: map[string]string{}}
	for _, ev := range events {
		n.contacts = append(n.contacts, ev.Event.ContactIDs()...)
		n.external = append(n.external, ev.Event.ExternalIDs()...)
		if ev.Event.Trigger == webhook.TriggerMerge && ev.Event.Deleted != nil && ev.Event.Preserved != nil {
			n.merged[ev.Event.Deleted.ID] = ev.Event.Preserved.ID
		}
	}
	slices.Sort(n.contacts)
	n.contacts = slices.Compact(n.contacts)
	return n
}

// eventBatch reconciles what one batch of events names.
func (r *Reconciler) eventBatch(ctx context.Context, runID int64, events []webhook.StoredEvent) (Report, error) {
	n := namedBy(events)
	snap, calls, err := r.namedSnapshot(ctx, n)
	if err != nil {
		return Report{Lookups: calls}, err
	}
	plan, more, err := r.plan(ctx, snap)
	calls += more
	if err != nil {
		return Report{Lookups: calls}, err
	}
	rep, err := r.Apply(ctx, runID, plan)
	rep.Lookups = calls
	return rep, err
}

// namedSnapshot reads, afresh, the named contacts, the records they (and
// their links) point at, and every contact that carries those records'
// external_ids, into an incremental snapshot: what a full run would see of
// those records, so the diff decides as it would. Adoptions wait for the
// full run, as in any incremental run.
//
// A merge moves a link: Sinch has folded the deleted contact into the
// preserved one, so the record linked to the deleted contact is now served
// by the preserved one, if that one is no other record's.
func (r *Reconciler) namedSnapshot(ctx context.Context, n named) (*planner.Index, int, error) {
	contacts, gone, err := r.getContacts(ctx, n.contacts)
	calls := len(n.contacts)
	if err != nil {
		return nil, calls, err
	}
	links, err := r.Store.Links(ctx, r.ProjectID)
	if err != nil {
		return nil, calls, fmt.Errorf("read links: %w", err)
	}
	byContact := make(map[string]string, len(n.contacts))
	want := make(map[string]bool, len(n.contacts))
	for _, id := range n.contacts {
		want[id] = true
	}
	for ext, l := range links {
		if want[l.ContactID] {
			byContact[l.ContactID] = ext
		}
	}
	held := make(map[string]sinch.Contact, len(contacts))
	for _, c := range contacts {
		held[c.ID] = c
	}

	exts := slices.Clone(n.external)
	for _, c := range contacts {
		if c.ExternalID != "" {
			exts = append(exts, c.ExternalID)
		}
	}
	for _, id := range n.contacts {
		if ext, ok := byContact[id]; ok {
			exts = append(exts, ext)
		}
	}
	slices.Sort(exts)
	exts = slices.Compact(exts)

	moved := make(map[string]string) // external_id -> the preserved contact now serving it
	for deleted, preserved := range n.merged {
		ext, linked := byContact[deleted]
		p, alive := held[preserved]
		if !linked || !alive || slices.Contains(gone, preserved) {
			continue
		}
		if other, ok := byContact[preserved]; ok && other != ext {
			continue // the preserved contact serves a record of its own
		}
		if p.ExternalID == "" || p.ExternalID == ext {
			moved[ext] = preserved
		}
	}

	records, err := r.Store.RecordsByExternalID(ctx, r.Source, exts)
	unread, err := rowErrors(err)
	if err != nil {
		return nil, calls, fmt.Errorf("read CRM records from %s: %w", r.Source, err)
	}
	found := make(map[string]bool, len(records))
	for _, rec := range records {
		found[rec.ExternalID] = true
	}
	for _, rej := range unread {
		found[rej.ExternalID] = true
	}

	// Every contact that carries one of those external_ids, and the
	// records' linked contacts, so that a duplicate is merged rather than
	// a second contact created, and a rename is seen.
	var lookups []lookup
	for _, ext := range exts {
		lookups = append(lookups, lookup{externalID: ext})
	}
	more, n2, err := r.lookUp(ctx, lookups)
	calls += n2
	if err != nil {
		return nil, calls, err
	}
	for _, c := range more {
		held[c.ID] = c
	}
	var linked []string
	for _, ext := range exts {
		if l, ok := links[ext]; ok {
			if _, have := held[l.ContactID]; !have && !slices.Contains(gone, l.ContactID) {
				linked = append(linked, l.ContactID)
			}
		}
	}
	slices.Sort(linked)
	linked = slices.Compact(linked)
	got, _, err := r.getContacts(ctx, linked)
	calls += len(linked)
	if err != nil {
		return nil, calls, err
	}
	for _, c := range got {
		held[c.ID] = c
	}

	snap := planner.NewIndex(r.Options, r.Source, false)
	snap.AddRecords(records)
	for _, rej := range unread {
		snap.AddUnreadable(rej)
	}
	// An external_id read from the source and not found there is gone:
	// what a full run would conclude of its contact. Unless the source is
	// empty: a broken view must not delete contacts one event at a time.
	if len(found) < len(exts) {
		empty, err := r.sourceEmpty(ctx)
		if err != nil {
			return nil, calls, err
		}
		for _, ext := range exts {
			if !found[ext] && !empty {
				snap.Vanish(ext)
			}
		}
	}
	for ext, l := range links {
		if to, ok := moved[ext]; ok {
			l = crm.Link{ExternalID: ext, ContactID: to}
		}
		snap.AddLinks(l)
	}
	all := make([]sinch.Contact, 0, len(held))
	for _, c := range held {
		all = append(all, c)
	}
	slices.SortFunc(all, func(a, b sinch.Contact) int { return strings.Compare(a.ID, b.ID) })
	snap.AddContacts(all)
	return snap, calls, nil
}

// sourceEmpty reports whether the CRM source holds no row at all.
func (r *Reconciler) sourceEmpty(ctx context.Context) (bool, error) {
	for batch, err := range r.Store.Records(ctx, r.Source, 1) {
		if _, ok := unreadable(err); ok {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("read CRM source %s: %w", r.Source, err)
		}
		return len(batch) == 0, nil
	}
	return true, nil
}

// rowErrors splits the rows RecordsByExternalID could not read from a real
// error.
func rowErrors(err error) ([]planner.Rejection, error) {
	if err == nil {
		return nil, nil
	}
	errs := []error{err}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		errs = joined.Unwrap()
	}
	var rejs []planner.Rejection
	for _, e := range errs {
		rej, ok := unreadable(e)
		if !ok {
			return nil, err
		}
		rejs = append(rejs, rej)
	}
	return rejs, nil
}
