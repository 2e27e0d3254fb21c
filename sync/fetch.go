package sync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	stdsync "sync"

	"golang.org/x/sync/errgroup"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
)

// listBuffer is how many pages of contacts may wait while the CRM side is
// still being read; the list chain is never held up before that.
const listBuffer = 4096

// Fetch reads the whole CRM source, the stored links and every Sinch
// contact into a snapshot. The Sinch list is a sequential chain of pages
// and is what a full run waits on, so it starts at once; its pages are
// added once the CRM side is in, which is what lets the snapshot hold a
// contact that is linked and in sync as a seen bit (see Snapshot).
func (r *Reconciler) Fetch(ctx context.Context) (*planner.Index, error) {
	return r.fetch(ctx, nil)
}

// fetch is Fetch; with early set (a full run that applies), the patches of
// linked contacts that differ from their record go to early as their pages
// arrive, and are in the snapshot as Sinch answered them once fetch
// returns.
func (r *Reconciler) fetch(ctx context.Context, early *early) (*planner.Index, error) {
	snap := planner.NewIndex(r.Options, r.Source, true)
	pr := progressOf(ctx)
	pages := make(chan []sinch.Contact, listBuffer)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(pages)
		for page, err := range r.Sinch.Pages(gctx, sinch.ListContactsRequest{PageSize: sinch.MaxPageSize}) {
			if err != nil {
				return fmt.Errorf("list Sinch contacts: %w", err)
			}
			pr.update(func(p *Progress) { p.Phase = PhaseReading; p.Contacts += len(page) })
			select {
			case pages <- page:
			case <-gctx.Done():
				return nil
			}
		}
		return nil
	})
	g.Go(func() error {
		for batch, err := range r.Store.Records(gctx, r.Source, r.BatchSize) {
			if rej, ok := unreadable(err); ok {
				snap.AddUnreadable(rej)
				continue
			}
			if err != nil {
				return fmt.Errorf("read CRM source %s: %w", r.Source, err)
			}
			snap.AddRecords(batch)
			pr.update(func(p *Progress) { p.Phase = PhaseReading; p.CRMRows += len(batch) })
		}
		if err := r.Store.EachLink(gctx, r.ProjectID, func(l crm.Link) { snap.AddLinks(l) }); err != nil {
			return fmt.Errorf("read links: %w", err)
		}
		for page := range pages {
			if early != nil {
				early.page(snap, page)
				continue
			}
			snap.AddContacts(page)
		}
		return nil
	})
	err := g.Wait()
	if early != nil {
		early.finish(snap)
	}
	if err != nil {
		return nil, err
	}
	return snap, nil
}

// plan diffs the snapshot, reading in full the contacts the plan turns out
// to depend on, until it depends on none. It returns the calls it made.
func (r *Reconciler) plan(ctx context.Context, snap *planner.Index) (planner.Plan, int, error) {
	calls := 0
	for {
		plan := planner.Diff(snap)
		if len(plan.Fetch) == 0 {
			return plan, calls, nil
		}
		got, gone, err := r.getContacts(ctx, plan.Fetch)
		calls += len(plan.Fetch)
		if err != nil {
			return planner.Plan{}, calls, err
		}
		snap.AddContacts(got)
		snap.Forget(gone)
	}
}

// getContacts reads contacts by id, Concurrency at a time; gone are the
// ids Sinch no longer has.
func (r *Reconciler) getContacts(ctx context.Context, ids []string) (got []sinch.Contact, gone []string, err error) {
	var mu stdsync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, r.Concurrency))
	for _, id := range ids {
		g.Go(func() error {
			c, err := r.Sinch.GetContact(gctx, id)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case sinch.IsNotFound(err):
				gone = append(gone, id)
			case err != nil:
				return fmt.Errorf("read contact %s: %w", id, err)
			default:
				got = append(got, *c)
			}
			return nil
		})
	}
	err = g.Wait()
	return got, gone, err
}

// unreadable turns a row the store could not read into a rejection, so the
// run goes on without it (and without deleting its contact).
func unreadable(err error) (planner.Rejection, bool) {
	var rowErr *crm.RowError
	if !errors.As(err, &rowErr) {
		return planner.Rejection{}, false
	}
	return planner.Rejection{ExternalID: rowErr.ExternalID, Column: rowErr.Column, Reason: rowErr.Err.Error()}, true
}

// unreadableRows splits what RecordsByExternalID returned as its error:
// the rows it could not read, joined as *crm.RowError each, become
// rejections; anything else is an error.
func unreadableRows(err error) ([]planner.Rejection, error) {
	if err == nil {
		return nil, nil
	}
	errs := []error{err}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		errs = joined.Unwrap()
	}
	var out []planner.Rejection
	for _, e := range errs {
		rej, ok := unreadable(e)
		if !ok {
			return nil, err
		}
		out = append(out, rej)
	}
	return out, nil
}

// Plan is a dry run: it fetches both sides and diffs them, writing nothing.
func (r *Reconciler) Plan(ctx context.Context) (planner.Plan, error) {
	plan, _, err := r.PlanSnapshot(ctx)
	return plan, err
}

// PlanSnapshot is Plan that also returns the snapshot the plan was made
// from, for saving the plan with its preconditions.
func (r *Reconciler) PlanSnapshot(ctx context.Context) (planner.Plan, *planner.Index, error) {
	snap, err := r.Fetch(ctx)
	if err != nil {
		return planner.Plan{}, nil, err
	}
	plan, _, err := r.plan(ctx, snap)
	return plan, snap, err
}

// full is a full reconcile: every contact, every row. The list of contacts
// is a sequential chain of pages, and most of a run's writes are usually
// patches of linked contacts that drifted, which no later page can change:
// those are sent while the chain goes on (see early), the rest once the
// snapshot is whole.
func (r *Reconciler) full(ctx context.Context, runID int64) (Report, error) {
	e := newEarly(ctx, r, runID)
	snap, err := r.fetch(ctx, e)
	earlyRep := e.rep
	if err != nil {
		earlyRep.Errors = append(earlyRep.Errors, err.Error())
		return earlyRep, err
	}
	plan, calls, err := r.plan(ctx, snap)
	if err != nil {
		earlyRep.Lookups += calls
		return earlyRep, err
	}
	rep, err := r.Apply(ctx, runID, plan)
	rep.Plan.DropBodies() // the run's own plan: nobody else holds it
	rep.Lookups += calls
	rep.add(earlyRep)
	return rep, err
}

// early sends the patches a full run can make while it still lists
// contacts (planner.Index.Page), in batches: one journal append, one batch
// of marks and one link save per batch rather than per page. Sinch's answers
// go back into the index (planner.Index.Settle) by the goroutine that owns
// it, between pages and at the end, where the final diff finds them in sync.
type early struct {
	r     *Reconciler
	ctx   context.Context // the run's: once cancelled, no new batch starts
	runID int64
	work  chan planner.Operation
	done  chan struct{}

	mu       stdsync.Mutex
	answered []answer // answers not yet settled into the index
	parts    []Report
	rep      Report // the early patches' report, once finished
}

// answer is what became of one early patch: the contact as Sinch returned
// it, nil when the patch did not land.
type answer struct {
	externalID string
	contact    *sinch.Contact
}

// maxEarlyBatch bounds the patches applied as one plan.
const maxEarlyBatch = 1000

func newEarly(ctx context.Context, r *Reconciler, runID int64) *early {
	e := &early{r: r, ctx: ctx, runID: runID, work: make(chan planner.Operation, 1<<16), done: make(chan struct{})}
	go e.apply()
	return e
}

// page hands a listed page to the index, sends the patches it returns, and
// settles the answers that came back meanwhile.
func (e *early) page(idx *planner.Index, page []sinch.Contact) {
	for _, op := range idx.Page(page) {
		e.work <- op
	}
	e.settle(idx)
}

func (e *early) apply() {
	defer close(e.done)
	for op := range e.work {
		plan := planner.Plan{Operations: []planner.Operation{op}}
	gather:
		for len(plan.Operations) < maxEarlyBatch {
			select {
			case more, ok := <-e.work:
				if !ok {
					break gather
				}
				plan.Operations = append(plan.Operations, more)
			default:
				break gather
			}
		}
		plan.Groups = planner.Order(plan.Operations)
		var rep Report
		if e.ctx.Err() == nil { // once cancelled, nothing new starts: each patch settles as not landed
			var err error
			rep, err = e.r.apply(e.ctx, e.runID, plan, true)
			if err != nil {
				rep.Errors = append(rep.Errors, err.Error())
				rep.Failed += len(plan.Operations) - rep.Applied.Patch - rep.Failed - rep.Skipped - len(rep.Rejected)
			}
		}
		got := make(map[string]*sinch.Contact, len(rep.answers))
		for i := range rep.answers {
			got[rep.answers[i].ID] = &rep.answers[i]
		}
		e.mu.Lock()
		for _, op := range plan.Operations {
			e.answered = append(e.answered, answer{externalID: op.ExternalID, contact: got[op.ContactID]})
		}
		if len(rep.Plan.Operations) > 0 {
			rep.answers, rep.Plan.Unchanged = nil, 0
			rep.Plan.DropBodies()
			rep.Plan.Detach()
			// Kept to the end of the run: without the room left by the
			// appends that gathered the batch.
			rep.Plan.Operations = slices.Clone(rep.Plan.Operations)
			rep.Plan.Groups = nil
			e.parts = append(e.parts, rep)
		}
		e.mu.Unlock()
	}
}

// settle puts the answers that came back into the index.
func (e *early) settle(idx *planner.Index) {
	e.mu.Lock()
	answered := e.answered
	e.answered = nil
	e.mu.Unlock()
	for _, a := range answered {
		idx.Settle(a.externalID, a.contact)
	}
}

// finish waits for the last answer, settles every answer into the index
// (a patch that did not land is not sent again this run) and gathers the
// early patches' report.
func (e *early) finish(idx *planner.Index) {
	close(e.work)
	<-e.done
	e.settle(idx)
	e.rep.add(e.parts...)
	e.parts = nil
}

// incremental reconciles the rows changed since the watermark, and the
// links whose record vanished from the source. Each such row costs one
// look-up by external_id, made in parallel; a row whose content hash matches
// what syncd last pushed costs nothing; a row syncd never linked is also
// looked up by its identities, so that a contact Sinch created on its own is
// seen (the diff defers taking it over to a full run).
func (r *Reconciler) incremental(ctx context.Context, runID int64) (Report, error) {
	watermark, _, err := r.Store.Watermark(ctx, r.ProjectID)
	if err != nil {
		return Report{}, err
	}
	overlap := r.Overlap
	if overlap == 0 {
		overlap = DefaultOverlap
	}
	links, err := r.Store.Links(ctx, r.ProjectID)
	if err != nil {
		return Report{}, fmt.Errorf("read links: %w", err)
	}
	// A row updated while the changes are paged is read twice; the later
	// read is the newer one.
	changed := make(map[string]crm.Record)
	var order []string
	var unread []planner.Rejection
	for batch, err := range r.Store.ChangedSince(ctx, r.Source, watermark.Add(-overlap), r.BatchSize) {
		if rej, ok := unreadable(err); ok {
			unread = append(unread, rej)
			continue
		}
		if err != nil {
			return Report{}, fmt.Errorf("read CRM changes from %s: %w", r.Source, err)
		}
		for _, rec := range batch {
			if _, ok := changed[rec.ExternalID]; !ok {
				order = append(order, rec.ExternalID)
			}
			changed[rec.ExternalID] = rec
		}
	}
	order, renamed, err := r.applyRenames(ctx, links, changed, order)
	if err != nil {
		return Report{}, err
	}
	vanished, err := r.Store.VanishedLinks(ctx, r.ProjectID, r.Source)
	if err != nil {
		return Report{}, err
	}

	snap := planner.NewIndex(r.Options, r.Source, false)
	unchanged := 0
	var lookups []lookup
	var records []crm.Record
	for _, ext := range order {
		rec := changed[ext]
		link, linked := links[ext]
		want, rej := planner.Normalize(rec, r.Options)
		switch {
		case rej != nil:
			records = append(records, rec) // the diff rejects it
		case want.Deleted && !linked:
			// Never synced, or already removed: nothing to do until the
			// next full run says otherwise.
		case !want.Deleted && linked && link.ContentHash == want.Hash:
			unchanged++
		default:
			records = append(records, rec)
			lookups = append(lookups, lookup{externalID: ext, linkedID: link.ContactID, identities: identitiesIfUnlinked(want, linked)})
		}
	}
	for _, l := range vanished {
		snap.Vanish(l.ExternalID)
		lookups = append(lookups, lookup{externalID: l.ExternalID})
	}
	contacts, calls, err := r.lookUp(ctx, lookups)
	if err != nil {
		return Report{Lookups: calls}, err
	}
	// A contact found may be the linked contact of a record that did not
	// change (its external_id changed or cleared in Sinch): the diff gives
	// it back to that record, which the snapshot must therefore hold, with
	// the contacts that carry its external_id, which may in turn be linked
	// to other records. Hand edits chain rarely and briefly; the closure is
	// bounded all the same.
	inSnap := make(map[string]bool, len(records))
	for _, rec := range records {
		inSnap[rec.ExternalID] = true
	}
	for _, l := range vanished {
		inSnap[l.ExternalID] = true
	}
	for round := 0; ; round++ {
		more, gone, moreUnread, err := r.linkedRecords(ctx, links, contacts, inSnap, changed)
		if err != nil {
			return Report{Lookups: calls}, err
		}
		if len(more)+len(gone)+len(moreUnread) == 0 {
			break
		}
		if round == maxLinkRounds {
			return Report{Lookups: calls}, fmt.Errorf("the contacts of the changed rows and the records they are linked to did not close after %d rounds: leaving them to the full run", maxLinkRounds)
		}
		var again []lookup
		for _, rec := range more {
			inSnap[rec.ExternalID] = true
			again = append(again, lookup{externalID: rec.ExternalID})
		}
		for _, ext := range gone {
			inSnap[ext] = true
			snap.Vanish(ext)
			again = append(again, lookup{externalID: ext})
		}
		for _, rej := range moreUnread {
			inSnap[rej.ExternalID] = true
		}
		records, unread = append(records, more...), append(unread, moreUnread...)
		found, n, err := r.lookUp(ctx, again)
		calls += n
		if err != nil {
			return Report{Lookups: calls}, err
		}
		contacts = mergeContacts(contacts, found)
	}
	snap.AddRecords(records)
	for _, rej := range unread {
		snap.AddUnreadable(rej)
	}
	for _, l := range links {
		snap.AddLinks(l)
	}
	snap.AddContacts(contacts)
	plan, gets, err := r.plan(ctx, snap)
	calls += gets
	if err != nil {
		return Report{Lookups: calls}, err
	}
	plan.Unchanged += unchanged
	rep, err := r.Apply(ctx, runID, plan)
	rep.Lookups = calls
	if err == nil && rep.Failed == 0 && len(renamed) > 0 {
		// The records' links moved to their new ids with the re-keying
		// patches; the old ones name nothing now.
		err = r.Store.DeleteLinks(context.WithoutCancel(ctx), r.ProjectID, renamed)
	}
	return rep, err
}

// maxLinkRounds bounds how far an incremental run follows contacts to the
// records they are linked to and back.
const maxLinkRounds = 8

// mergeContacts adds to contacts those of more it does not hold yet.
func mergeContacts(contacts, more []sinch.Contact) []sinch.Contact {
	have := make(map[string]bool, len(contacts))
	for _, c := range contacts {
		have[c.ID] = true
	}
	for _, c := range more {
		if !have[c.ID] {
			have[c.ID] = true
			contacts = append(contacts, c)
		}
	}
	return contacts
}

// linkedRecords returns the records, not yet in the snapshot, whose stored
// link is one of the contacts: from the rows read (one that did not change
// since it was synced) or read now; gone are the external_ids of those links
// whose row is no longer in the source.
func (r *Reconciler) linkedRecords(ctx context.Context, links map[string]crm.Link, contacts []sinch.Contact, inSnap map[string]bool, read map[string]crm.Record) (records []crm.Record, gone []string, unread []planner.Rejection, err error) {
	found := make(map[string]bool, len(contacts))
	for _, c := range contacts {
		found[c.ID] = true
	}
	var want []string
	for ext, l := range links {
		if inSnap[ext] || !found[l.ContactID] {
			continue
		}
		if rec, ok := read[ext]; ok {
			records = append(records, rec)
		} else {
			want = append(want, ext)
		}
	}
	if len(want) == 0 {
		return records, nil, nil, nil
	}
	slices.Sort(want)
	more, err := r.Store.RecordsByExternalID(ctx, r.Source, want)
	if unread, err = unreadableRows(err); err != nil {
		return nil, nil, nil, fmt.Errorf("read the records of linked contacts: %w", err)
	}
	records = append(records, more...)
	have := make(map[string]bool, len(more)+len(unread))
	for _, rec := range more {
		have[rec.ExternalID] = true
	}
	for _, rej := range unread {
		have[rej.ExternalID] = true
	}
	for _, ext := range want {
		if !have[ext] {
			gone = append(gone, ext)
		}
	}
	return records, gone, unread, nil
}

type lookup struct {
	externalID string
	// linkedID is the record's linked contact, read by id when it no
	// longer carries the external_id (a person changed it in Sinch).
	linkedID   string
	identities []sinch.ChannelIdentity // also looked up: the row was never linked
}

func identitiesIfUnlinked(want planner.Desired, linked bool) []sinch.ChannelIdentity {
	if linked || want.Deleted {
		return nil
	}
	return want.Identities
}

// lookUp finds the contacts that carry each external_id, and the contacts
// that hold the given identities, with at most Concurrency calls in flight.
// It returns each contact once.
func (r *Reconciler) lookUp(ctx context.Context, lookups []lookup) ([]sinch.Contact, int, error) {
	var mu stdsync.Mutex
	seen := make(map[string]bool)
	var out []sinch.Contact
	calls := 0
	add := func(cs []sinch.Contact, n int) {
		mu.Lock()
		defer mu.Unlock()
		calls += n
		for _, c := range cs {
			if !seen[c.ID] {
				seen[c.ID] = true
				out = append(out, c)
			}
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, r.Concurrency))
	for _, l := range lookups {
		g.Go(func() error {
			cs, err := r.Sinch.FindByExternalID(gctx, l.externalID)
			if err != nil {
				return fmt.Errorf("look up %s: %w", l.externalID, err)
			}
			add(cs, 1)
			if l.linkedID != "" && !slices.ContainsFunc(cs, func(c sinch.Contact) bool { return c.ID == l.linkedID }) {
				c, err := r.Sinch.GetContact(gctx, l.linkedID)
				switch {
				case sinch.IsNotFound(err):
					add(nil, 1)
				case err != nil:
					return fmt.Errorf("read the linked contact of %s: %w", l.externalID, err)
				default:
					add([]sinch.Contact{*c}, 1)
				}
			}
			if len(cs) > 0 {
				return nil // it has a contact: adoption is moot
			}
			for _, id := range l.identities {
				var found []sinch.Contact
				n := 0
				for page, err := range r.Sinch.Pages(gctx, sinch.ListContactsRequest{PageSize: sinch.MaxPageSize, Channel: id.Channel, Identity: id.Identity}) {
					n++
					if err != nil {
						return fmt.Errorf("look up identity of %s on %s: %w", l.externalID, id.Channel, err)
					}
					found = append(found, page...)
				}
				add(found, n)
			}
			return nil
		})
	}
	err := g.Wait()
	// Answers come in any order; the diff's notes and reports should not.
	slices.SortFunc(out, func(a, b sinch.Contact) int { return strings.Compare(a.ID, b.ID) })
	return out, calls, err
}
