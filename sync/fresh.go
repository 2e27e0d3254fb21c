package sync

import (
	"context"
	"fmt"
	"slices"
	stdsync "sync"
	"time"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
)

// fresh checks, just before a full run sends what cannot be undone, that
// the facts it rests on still hold. A full run acts on what it read minutes
// or hours before (83 minutes of listing at a million contacts), and both
// sides change meanwhile; a partial run has just read what it acts on. So
// before
//
//   - a delete (or an unlink): the record is read again, and the rows
//     changed since the run read the CRM are searched for one now holding
//     the contact's identities (a rename), as are the CRM's rename
//     notifications;
//   - a create for a record that has a link: the linked contact is read (a
//     list that shifted under its page token can miss it);
//   - a merge: both contacts are read again, and must be as the diff saw
//     them.
//
// An operation whose facts no longer hold is skipped, with the reason, and
// left to the next run, which reads afresh. Each check costs a read: a
// query for a delete, one or two Sinch calls for a create or a merge.
type fresh struct {
	r         *Reconciler
	readStart time.Time
	removals  []string // the external_ids whose contacts the plan removes, read again in one query

	once    stdsync.Once
	now     map[string]crm.Record        // the records of removals, as read again
	unread  map[string]planner.Rejection // those that could not be read
	changed map[string][]string          // lookup key -> rows changed since readStart that hold it
	err     error
}

// newFresh is the check of a full run that read the CRM from readStart on
// and is about to apply plan.
func newFresh(r *Reconciler, readStart time.Time, plan planner.Plan) *fresh {
	f := &fresh{r: r, readStart: readStart}
	for _, op := range plan.Operations {
		if op.Removes() {
			f.removals = append(f.removals, op.ExternalID)
		}
	}
	return f
}

// read reads again, once, what removals rest on: their records, and the
// rows changed since the run's read.
func (f *fresh) read(ctx context.Context) error {
	f.once.Do(func() {
		slices.Sort(f.removals)
		recs, err := f.r.CRM.RecordsByExternalID(ctx, f.r.Source, slices.Compact(f.removals))
		unread, err := unreadableRows(err)
		if err != nil {
			f.err = fmt.Errorf("read again the records whose contacts the run removes: %w", err)
			return
		}
		f.now = make(map[string]crm.Record, len(recs))
		for _, rec := range recs {
			f.now[rec.ExternalID] = rec
		}
		f.unread = make(map[string]planner.Rejection, len(unread))
		for _, rej := range unread {
			f.unread[rej.ExternalID] = rej
		}
		_, f.changed, f.err = f.r.changedSince(ctx, f.readStart)
	})
	return f.err
}

// check says why op must not be sent now; "" when its facts hold.
func (f *fresh) check(ctx context.Context, op planner.Operation) (string, error) {
	switch {
	case op.Removes():
		return f.checkRemoval(ctx, op)
	case op.Kind == planner.OpCreate:
		return f.checkCreate(ctx, op)
	case op.Kind == planner.OpMerge:
		return f.checkMerge(ctx, op)
	}
	return "", nil
}

func (f *fresh) checkRemoval(ctx context.Context, op planner.Operation) (string, error) {
	if err := f.read(ctx); err != nil {
		return "", err
	}
	if rej, ok := f.unread[op.ExternalID]; ok {
		return "the record can no longer be read (" + rej.String() + "): its contact is kept", nil
	}
	if rec, ok := f.now[op.ExternalID]; ok && !rec.Deleted() {
		return "the record is back in the CRM since the run read it", nil
	}
	if to, ok := f.r.peekRename(op.ExternalID); ok {
		return fmt.Sprintf("the CRM reports the record renamed to %s since the run read it", to), nil
	}
	for _, c := range op.Before {
		if c.ID != op.ContactID {
			continue
		}
		for _, k := range planner.LookupKeys(c.ChannelIdentities) {
			if exts := f.changed[k]; len(exts) > 0 {
				return fmt.Sprintf("%s, changed since the run read the CRM, holds the contact's identity (a rename?): left to the next run", exts[0]), nil
			}
		}
	}
	return "", nil
}

func (f *fresh) checkCreate(ctx context.Context, op planner.Operation) (string, error) {
	if op.Linked == "" {
		return "", nil
	}
	c, err := f.r.Sinch.GetContact(ctx, op.Linked)
	switch {
	case sinch.IsNotFound(err):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("read the linked contact of %s before creating: %w", op.ExternalID, err)
	}
	return fmt.Sprintf("its linked contact %s exists (external_id %q), which the run's list missed: left to the next run", c.ID, c.ExternalID), nil
}

func (f *fresh) checkMerge(ctx context.Context, op planner.Operation) (string, error) {
	for _, want := range op.Before {
		c, err := f.r.Sinch.GetContact(ctx, want.ID)
		switch {
		case sinch.IsNotFound(err):
			return fmt.Sprintf("contact %s is gone since the run read it", want.ID), nil
		case err != nil:
			return "", fmt.Errorf("read contact %s again before merging: %w", want.ID, err)
		case !sameForMerge(*c, want):
			return fmt.Sprintf("contact %s changed since the run read it", want.ID), nil
		}
	}
	return "", nil
}

// sameForMerge compares a contact read now with the one the diff saw, as
// Sinch shows them; an empty list and a missing one are the same.
func sameForMerge(now, then sinch.Contact) bool {
	norm := func(c sinch.Contact) sinch.Contact {
		if len(c.ChannelPriority) == 0 {
			c.ChannelPriority = nil
		}
		if len(c.ChannelIdentities) == 0 {
			c.ChannelIdentities = nil
		}
		return c
	}
	return planner.SameContact(norm(now), norm(then))
}

// peekRename is the new external_id the CRM reported for oldID, left for
// the next incremental run to take.
func (r *Reconciler) peekRename(oldID string) (string, bool) {
	r.renames.mu.Lock()
	defer r.renames.mu.Unlock()
	to, ok := r.renames.byID[oldID]
	return to, ok
}
