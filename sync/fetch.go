package sync

import (
	"context"
	"errors"
	"fmt"
	stdsync "sync"

	"golang.org/x/sync/errgroup"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/sinch"
)

// Fetch reads the whole CRM source and every Sinch contact. The two sides
// are read at the same time: the Sinch list is a sequential chain of pages
// and is what a full run waits on.
func (r *Reconciler) Fetch(ctx context.Context) (Snapshot, error) {
	return r.fetch(ctx, nil)
}

// pageWatcher sees the CRM side once it is read, then each page of contacts
// as it arrives, while the list chain goes on.
type pageWatcher interface {
	crm(snap *Snapshot)
	page(contacts []sinch.Contact)
	listed()
}

// linkStreamer is a Store that hands links over one at a time; *crm.Store
// is one.
type linkStreamer interface {
	EachLink(ctx context.Context, projectID string, fn func(crm.Link)) error
}

// fetch reads both sides. With a watcher (a full run) it holds them lean:
// the CRM rows only normalised and indexed, the links only as indexed, the
// contacts packed, which is what lets a million of each fit in a few
// hundred megabytes. Without one (Fetch) the snapshot has every field.
func (r *Reconciler) fetch(ctx context.Context, watch pageWatcher) (Snapshot, error) {
	snap := Snapshot{Complete: true, Source: r.Source}
	lean := watch != nil
	if lean {
		snap.packed = &packedContacts{}
	}
	pr := progressOf(ctx)
	crmRead := make(chan struct{}) // closed once records and links are in
	var pages chan []sinch.Contact
	if watch != nil {
		pages = make(chan []sinch.Contact, 1<<16)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		prep := newPrepared()
		for batch, err := range r.Store.Records(gctx, r.Source, r.BatchSize) {
			if rej, ok := unreadable(err); ok {
				snap.Unreadable = append(snap.Unreadable, rej)
				continue
			}
			if err != nil {
				return fmt.Errorf("read CRM source %s: %w", r.Source, err)
			}
			if !lean {
				snap.Records = append(snap.Records, batch...)
			}
			// Normalised as read, while the list chain runs, once for
			// the early patches and the diff alike.
			prep.add(batch, r.Options)
			pr.update(func(p *Progress) { p.Phase = PhaseReading; p.CRMRows += len(batch) })
		}
		prep.index()
		snap.prep = prep
		if ls, ok := r.Store.(linkStreamer); ok && lean {
			if err := ls.EachLink(gctx, r.ProjectID, snap.prep.addLink); err != nil {
				return fmt.Errorf("read links: %w", err)
			}
		} else {
			links, err := r.Store.Links(gctx, r.ProjectID)
			if err != nil {
				return fmt.Errorf("read links: %w", err)
			}
			snap.Links = links
			snap.prep.withLinks(links)
		}
		close(crmRead)
		return nil
	})
	g.Go(func() error {
		if pages != nil {
			defer close(pages)
		}
		for page, err := range r.Sinch.Pages(gctx, sinch.ListContactsRequest{PageSize: sinch.MaxPageSize}) {
			if err != nil {
				return fmt.Errorf("list Sinch contacts: %w", err)
			}
			if lean {
				snap.packed.add(page)
			} else {
				snap.Contacts = append(snap.Contacts, page...)
			}
			pr.update(func(p *Progress) { p.Phase = PhaseReading; p.Contacts += len(page) })
			if pages != nil {
				select {
				case pages <- page:
				default: // the watcher is far behind; the final diff covers the rest
				}
			}
		}
		return nil
	})
	if watch != nil {
		g.Go(func() error {
			defer watch.listed()
			select {
			case <-crmRead:
			case <-gctx.Done():
				return nil
			}
			watch.crm(&snap)
			for page := range pages {
				watch.page(page)
			}
			return nil
		})
	}
	return snap, g.Wait()
}

// unreadable turns a row the store could not read into a rejection, so the
// run goes on without it (and without deleting its contact).
func unreadable(err error) (Rejection, bool) {
	var rowErr *crm.RowError
	if !errors.As(err, &rowErr) {
		return Rejection{}, false
	}
	return Rejection{ExternalID: rowErr.ExternalID, Column: rowErr.Column, Reason: rowErr.Err.Error()}, true
}

// Plan is a dry run: it fetches both sides and diffs them, writing nothing.
// It holds the snapshot lean, as a full run does (callers that need the
// snapshot itself use Fetch).
func (r *Reconciler) Plan(ctx context.Context) (Plan, error) {
	snap, err := r.fetch(ctx, dryRun{})
	if err != nil {
		return Plan{}, err
	}
	return Diff(snap, r.Options), nil
}

// dryRun watches a fetch without acting on what it sees: the fetch is lean,
// and nothing is sent early.
type dryRun struct{}

func (dryRun) crm(*Snapshot)        {}
func (dryRun) page([]sinch.Contact) {}
func (dryRun) listed()              {}

// incremental reconciles the rows changed since the watermark. Each changed
// row costs one look-up by external_id, made in parallel; a row whose content
// hash matches what syncd last pushed costs nothing; a row syncd never linked
// is also looked up by its identities, so that it can adopt a contact Sinch
// created on its own.
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
	snap := Snapshot{Links: links, Source: r.Source}
	unchanged := 0
	var lookups []lookup
	for batch, err := range r.Store.ChangedSince(ctx, r.Source, watermark.Add(-overlap), r.BatchSize) {
		if rej, ok := unreadable(err); ok {
			snap.Unreadable = append(snap.Unreadable, rej)
			continue
		}
		if err != nil {
			return Report{}, fmt.Errorf("read CRM changes from %s: %w", r.Source, err)
		}
		for _, rec := range batch {
			link, linked := links[rec.ExternalID]
			want, rej := Normalize(rec, r.Options)
			switch {
			case rej != nil:
				snap.Records = append(snap.Records, rec) // the diff rejects it
			case want.Deleted && !linked:
				// Never synced, or already removed: nothing to do until the
				// next full run says otherwise.
			case !want.Deleted && linked && link.ContentHash == want.Hash:
				unchanged++
			default:
				snap.Records = append(snap.Records, rec)
				lookups = append(lookups, lookup{externalID: rec.ExternalID, identities: identitiesIfUnlinked(want, linked)})
			}
		}
	}
	contacts, calls, err := r.lookUp(ctx, lookups)
	if err != nil {
		return Report{Lookups: calls}, err
	}
	snap.Contacts = contacts
	plan := Diff(snap, r.Options)
	plan.Unchanged += unchanged
	rep, err := r.Apply(ctx, runID, plan)
	rep.Lookups = calls
	return rep, err
}

type lookup struct {
	externalID string
	identities []sinch.ChannelIdentity // also looked up: the row was never linked
}

func identitiesIfUnlinked(want Desired, linked bool) []sinch.ChannelIdentity {
	if linked || want.Deleted {
		return nil
	}
	return want.Identities
}

// lookUp finds the contacts that carry each external_id, and the contacts
// without one that hold the given identities, with at most Concurrency
// calls in flight. It returns each contact once.
func (r *Reconciler) lookUp(ctx context.Context, lookups []lookup) ([]sinch.Contact, int, error) {
	var mu stdsync.Mutex
	seen := make(map[string]bool)
	var out []sinch.Contact
	calls := 0
	add := func(cs []sinch.Contact, n int, unlinkedOnly bool) {
		mu.Lock()
		defer mu.Unlock()
		calls += n
		for _, c := range cs {
			if !seen[c.ID] && (!unlinkedOnly || c.ExternalID == "") {
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
			add(cs, 1, false)
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
				add(found, n, true)
			}
			return nil
		})
	}
	err := g.Wait()
	return out, calls, err
}
