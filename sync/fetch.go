package sync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	stdsync "sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/state"
)

// listBuffer is how many pages of contacts may wait while the CRM side is
// still being read; the list chain is never held up before that.
const listBuffer = 4096

// fetch reads the whole CRM source, the stored links and every Sinch
// contact into an index. The Sinch list is a sequential chain of pages and
// is what a full run waits on, so it starts at once; its pages are added
// once the CRM side is in, which is what lets the index hold a contact that
// is linked and in sync as a seen bit (see planner.Index).
//
// With early set (a full run that applies), the patches of linked contacts
// that differ from their record go to early as their pages arrive, and are
// in the index as Sinch answered them once fetch returns.
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
		for batch, err := range r.CRM.Records(gctx, r.Source, r.BatchSize) {
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
		if err := r.Links.EachLink(gctx, r.ProjectID, func(l planner.Link) { snap.AddLinks(l) }); err != nil {
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

// getContactsWith reads contacts by id through api, Concurrency at a time;
// gone are the ids Sinch no longer has.
func (r *Reconciler) getContactsWith(ctx context.Context, api SinchAPI, ids []string) (got []sinch.Contact, gone []string, err error) {
	var mu stdsync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, r.Concurrency))
	for _, id := range ids {
		g.Go(func() error {
			c, err := api.GetContact(gctx, id)
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

// Plan is a dry run: it reads both sides whole and diffs them, writing
// nothing.
func (r *Reconciler) Plan(ctx context.Context) (planner.Plan, error) {
	plan, _, err := r.PlanSnapshot(ctx)
	return plan, err
}

// PlanSnapshot is Plan that also returns the index the plan was made
// from, for saving the plan with its preconditions.
func (r *Reconciler) PlanSnapshot(ctx context.Context) (planner.Plan, *planner.Index, error) {
	plan, idx, _, err := r.plan(ctx, fullScope{r: r})
	return plan, idx, err
}

// fullScope is the scope of a full run: every CRM row and every Sinch
// contact. With early set (a full run that applies), the patches the index
// returns for listed pages are sent while the list goes on.
type fullScope struct {
	r     *Reconciler
	early *early
}

func (s fullScope) read(ctx context.Context) (*planner.Index, error) { return s.r.fetch(ctx, s.early) }

// full is a full reconcile: every contact, every row. The list of contacts
// is a sequential chain of pages, and most of a run's writes are usually
// patches of linked contacts that drifted, which no later page can change:
// those are sent while the chain goes on (see early), the rest once the
// index is whole, a batch at a time under the project lock (see fullRun).
// Once it has read everything it also brings syncd's index of the records'
// identities up to date and, having decided everything, empties the queue
// of what partial runs deferred.
func (r *Reconciler) full(ctx context.Context, runID int64, at runTimes) (Report, error) {
	w := &fullWrites{r: r, runID: runID, at: at}
	defer w.close()
	e := newEarly(ctx, w)
	plan, idx, reads, err := r.plan(ctx, fullScope{r: r, early: e})
	earlyRep := e.rep
	earlyRep.Lookups += reads
	if err != nil {
		earlyRep.Errors = append(earlyRep.Errors, err.Error())
		return earlyRep, err
	}
	rep, err := w.writePlan(ctx, plan, applyOpts{check: newFresh(r, at.readStart, plan)})
	rep.Plan.DropBodies() // the run's own plan: nobody else holds it
	rep.Lookups += reads
	rep.add(earlyRep)
	rep.Withheld += earlyRep.Withheld
	if err == nil {
		err = r.indexIdentities(ctx, idx)
	}
	if err == nil && rep.Failed == 0 {
		err = r.Deferrals.ClearDeferred(context.WithoutCancel(ctx), r.ProjectID, at.readStart)
	}
	return rep, err
}

// identityChunk is how many records' identities a full run indexes per
// statement.
const identityChunk = 5000

// indexIdentities writes what a full run read of the records' identities:
// all of them the first time (one COPY), then those that changed since they
// were last indexed; and it drops the records no longer in the source.
func (r *Reconciler) indexIdentities(ctx context.Context, idx *planner.Index) error {
	ctx = context.WithoutCancel(ctx)
	built, err := r.Identities.IdentitiesIndexed(ctx, r.ProjectID)
	if err != nil {
		return err
	}
	if !built {
		if err := r.Identities.BuildIdentities(ctx, r.ProjectID, idx.Identities(true)); err != nil {
			return err
		}
		return r.Identities.PruneIdentities(ctx, r.ProjectID, r.Source)
	}
	batch := make(map[string][]string)
	for ext, keys := range idx.Identities(false) {
		batch[ext] = slices.Clone(keys)
		if len(batch) == identityChunk {
			if err := r.Identities.IndexIdentities(ctx, r.ProjectID, batch); err != nil {
				return err
			}
			clear(batch)
		}
	}
	if err := r.Identities.IndexIdentities(ctx, r.ProjectID, batch); err != nil {
		return err
	}
	return r.Identities.PruneIdentities(ctx, r.ProjectID, r.Source)
}

// early sends the patches a full run can make while it still lists
// contacts (planner.Index.Page), in batches: one journal append, one batch
// of marks and one link save per batch rather than per page. Sinch's answers
// go back into the index (planner.Index.Settle) by the goroutine that owns
// it, between pages and at the end, where the final diff finds them in sync.
type early struct {
	w    *fullWrites
	ctx  context.Context         // the run's: once cancelled, no new batch starts
	work chan *planner.Operation // pointers: a buffer of 64k operations themselves would be 20 MB
	done chan struct{}

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

// earlyGather is how long early patches gather before they are written
// together. Each write takes the project lock and reads what changed under
// the run, which costs as much for one patch as for a thousand, and a page
// with a patch comes every few round trips: written as they came, the
// patches of a 100k backfill were about 5,000 writes of one or two.
const earlyGather = 200 * time.Millisecond

func newEarly(ctx context.Context, w *fullWrites) *early {
	e := &early{w: w, ctx: ctx, work: make(chan *planner.Operation, 1<<16), done: make(chan struct{})}
	go e.apply()
	return e
}

// page hands a listed page to the index, sends the patches it returns, and
// settles the answers that came back meanwhile.
func (e *early) page(idx *planner.Index, page []sinch.Contact) {
	early := idx.Page(page)
	for i := range early {
		e.work <- &early[i]
	}
	e.settle(idx)
}

func (e *early) apply() {
	defer close(e.done)
	for op := range e.work {
		plan := planner.Plan{Operations: []planner.Operation{*op}}
		gathered := time.NewTimer(earlyGather)
	gather:
		for len(plan.Operations) < maxEarlyBatch {
			select {
			case more, ok := <-e.work:
				if !ok {
					break gather
				}
				plan.Operations = append(plan.Operations, *more)
			case <-gathered.C:
				break gather
			}
		}
		gathered.Stop()
		plan.Groups = planner.Order(plan.Operations)
		var rep Report
		if e.ctx.Err() == nil { // once cancelled, nothing new starts: each patch settles as not landed
			var err error
			rep, err = e.w.write(e.ctx, plan, applyOpts{answers: true})
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
// links whose record vanished from the source, each with the part of the
// world connected to it (partialScope). A row whose content hash matches
// what syncd last pushed costs nothing.
func (r *Reconciler) incremental(ctx context.Context, runID int64, _ runTimes) (Report, error) {
	changed, order, unread, err := r.readChanges(ctx)
	if err != nil {
		return Report{}, err
	}
	links, err := r.Links.LinksOf(ctx, r.ProjectID, order)
	if err != nil {
		return Report{}, err
	}
	linkOf := make(map[string]planner.Link, len(links))
	for _, l := range links {
		linkOf[l.ExternalID] = l
	}
	scope := &partialScope{r: r, known: make(map[string]crm.Record), renames: r.takeRenames(), changed: changed}
	unchanged := 0
	for _, ext := range order {
		rec := changed[ext]
		link, linked := linkOf[ext]
		want, rej := planner.Normalize(rec, r.Options)
		switch {
		case rej == nil && want.Deleted && !linked:
			// Never synced, or already removed: nothing to do until the
			// next full run says otherwise.
		case rej == nil && !want.Deleted && linked && link.ContentHash == want.Hash:
			unchanged++
		default:
			scope.records = append(scope.records, ext)
			scope.known[ext] = rec
		}
	}
	for _, rej := range unread {
		scope.records = append(scope.records, rej.ExternalID)
		scope.unread = append(scope.unread, rej)
	}
	vanished, err := r.Links.VanishedLinks(ctx, r.ProjectID, r.Source)
	if err != nil {
		return Report{}, err
	}
	for _, l := range vanished {
		scope.records = append(scope.records, l.ExternalID)
	}
	for old, to := range scope.renames {
		scope.records = append(scope.records, old, to)
	}
	if scope.records, err = r.notDeferred(ctx, state.DeferRecord, scope.records, changed); err != nil {
		return Report{}, err
	}
	if len(scope.records) == 0 {
		return Report{Plan: planner.Plan{Unchanged: unchanged}}, nil
	}
	plan, _, reads, err := r.plan(ctx, scope)
	if err != nil {
		return Report{Lookups: reads}, err
	}
	plan.Unchanged += unchanged
	return r.applyPartial(ctx, runID, plan, reads, scope)
}

// readChanges reads the CRM rows changed since the watermark (less the
// overlap), in the order read; a row updated while the changes are paged is
// read twice, and the later read is the newer one.
func (r *Reconciler) readChanges(ctx context.Context) (changed map[string]crm.Record, order []string, unread []planner.Rejection, err error) {
	watermark, _, err := r.Watermarks.Watermark(ctx, r.ProjectID)
	if err != nil {
		return nil, nil, nil, err
	}
	overlap := r.Overlap
	if overlap == 0 {
		overlap = DefaultOverlap
	}
	changed = make(map[string]crm.Record)
	for batch, err := range r.CRM.ChangedSince(ctx, r.Source, watermark.Add(-overlap), r.BatchSize) {
		if rej, ok := unreadable(err); ok {
			unread = append(unread, rej)
			continue
		}
		if err != nil {
			return nil, nil, nil, fmt.Errorf("read CRM changes from %s: %w", r.Source, err)
		}
		for _, rec := range batch {
			if _, ok := changed[rec.ExternalID]; !ok {
				order = append(order, rec.ExternalID)
			}
			changed[rec.ExternalID] = rec
		}
	}
	return changed, order, unread, nil
}

// changedRows are the CRM rows changed since the watermark, for a partial
// run that is not an incremental one.
func (r *Reconciler) changedRows(ctx context.Context) (map[string]crm.Record, error) {
	changed, _, _, err := r.readChanges(ctx)
	return changed, err
}

// notDeferred drops from seeds those queued for the next full run: a
// partial run does not look them up again. A record that changed since it
// was deferred (its row in changed is newer) is tried afresh.
func (r *Reconciler) notDeferred(ctx context.Context, kind string, seeds []string, changed map[string]crm.Record) ([]string, error) {
	slices.Sort(seeds)
	seeds = slices.Compact(seeds)
	if len(seeds) == 0 {
		return nil, nil
	}
	queued, err := r.Deferrals.Deferred(ctx, r.ProjectID, kind, seeds)
	if err != nil || len(queued) == 0 {
		return seeds, err
	}
	skip := make(map[string]bool, len(queued))
	for _, d := range queued {
		if rec, ok := changed[d.Key]; !ok || !rec.UpdatedAt.After(d.DeferredAt) {
			skip[d.Key] = true
		}
	}
	return slices.DeleteFunc(seeds, func(s string) bool { return skip[s] }), nil
}

// applyPartial applies the plan of a partial scope, queues what the scope
// deferred (noting what was not queued before), and once everything landed
// indexes the identities of the records it read and drops the links that
// renames moved.
func (r *Reconciler) applyPartial(ctx context.Context, runID int64, plan planner.Plan, reads int, scope *partialScope) (Report, error) {
	found := scope.found
	stateCtx := context.WithoutCancel(ctx)
	if len(found.deferred) > 0 {
		for i := range found.deferred {
			found.deferred[i].RunID = runID
		}
		added, err := r.Deferrals.Defer(stateCtx, r.ProjectID, found.deferred)
		if err != nil {
			return Report{Lookups: reads}, err
		}
		for _, d := range added {
			plan.Notes = append(plan.Notes, fmt.Sprintf("%s %s: deferred to the next full run: %s", d.Kind, d.Key, d.Reason))
		}
	}
	rep, err := r.Apply(ctx, runID, plan)
	rep.Lookups, rep.Deferred = reads, len(found.deferred)
	if err != nil || rep.Failed > 0 {
		return rep, err
	}
	if err := r.Identities.IndexIdentities(stateCtx, r.ProjectID, found.keys); err != nil {
		return rep, err
	}
	if len(found.renamed) > 0 {
		// The records' links moved to their new ids with the re-keying
		// patches; the old ones name nothing now.
		err = r.Links.DeleteLinks(stateCtx, r.ProjectID, found.renamed)
	}
	return rep, err
}

// getContacts reads contacts by id, Concurrency at a time; gone are the
// ids Sinch no longer has.
func (r *Reconciler) getContacts(ctx context.Context, ids []string) (got []sinch.Contact, gone []string, err error) {
	return r.getContactsWith(ctx, r.reader(), ids)
}

// sourceEmpty reports whether the CRM source holds no row at all.
func (r *Reconciler) sourceEmpty(ctx context.Context) (bool, error) {
	for batch, err := range r.CRM.Records(ctx, r.Source, 1) {
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
