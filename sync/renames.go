package sync

import (
	"context"
	"fmt"
	stdsync "sync"

	"github.com/syncd/syncd/crm"
)

// renames are the records the CRM reported renamed (crm.Change.Renamed),
// old external_id to new, waiting for the next incremental run.
type renames struct {
	mu   stdsync.Mutex
	byID map[string]string
}

// NoteRename tells the reconciler that the CRM record oldID now has the
// external_id newID, as the CRM's change notification says. The next
// incremental run then re-keys the record's contact at once, which it
// otherwise leaves to a full run: from the two rows alone it could not tell
// a rename from a delete and an insert that happen to share an identity.
// Safe for concurrent use.
func (r *Reconciler) NoteRename(oldID, newID string) {
	if oldID == "" || newID == "" || oldID == newID {
		return
	}
	r.renames.mu.Lock()
	defer r.renames.mu.Unlock()
	if r.renames.byID == nil {
		r.renames.byID = make(map[string]string)
	}
	// a→b then b→c is a→c.
	for old, to := range r.renames.byID {
		if to == oldID {
			r.renames.byID[old] = newID
		}
	}
	r.renames.byID[oldID] = newID
}

func (r *Reconciler) takeRenames() map[string]string {
	r.renames.mu.Lock()
	defer r.renames.mu.Unlock()
	out := r.renames.byID
	r.renames.byID = nil
	return out
}

// applyRenames moves the link of each renamed record to its new
// external_id, for the run's snapshot: the diff then finds the record's
// contact linked to it, still carrying the old external_id, and re-keys it
// with one patch (and deletes nothing). The new row is read when the
// changes did not bring it (a loader that set updated_at). A rename is
// taken only when the old id is linked, the old row is gone and the new one
// is not linked yet. It returns the old ids whose links the run may delete
// once it has applied.
func (r *Reconciler) applyRenames(ctx context.Context, links map[string]crm.Link, changed map[string]crm.Record, order []string) ([]string, []string, error) {
	hints := r.takeRenames()
	if len(hints) == 0 {
		return order, nil, nil
	}
	var olds, missing []string
	for old, to := range hints {
		if _, linked := links[old]; !linked {
			continue
		}
		if _, taken := links[to]; taken {
			continue
		}
		olds = append(olds, old)
		if _, ok := changed[to]; !ok {
			missing = append(missing, to)
		}
	}
	if len(olds) == 0 {
		return order, nil, nil
	}
	// The state of both ids, read now: the notification is a trigger, not
	// truth.
	both := append(append([]string{}, olds...), missing...)
	recs, err := r.Store.RecordsByExternalID(ctx, r.Source, both)
	if _, err := rowErrors(err); err != nil {
		return order, nil, fmt.Errorf("read renamed records from %s: %w", r.Source, err)
	}
	present := make(map[string]crm.Record, len(recs))
	for _, rec := range recs {
		present[rec.ExternalID] = rec
	}
	var moved []string
	for _, old := range olds {
		to := hints[old]
		if _, still := present[old]; still {
			continue // the old row is back (or never left): no rename to act on
		}
		rec, ok := changed[to]
		if !ok {
			if rec, ok = present[to]; !ok {
				continue // renamed again, or deleted since
			}
			changed[to] = rec
			order = append(order, to)
		}
		l := links[old]
		// No content hash: the contact still carries the old external_id,
		// so the record is never "unchanged".
		links[to] = crm.Link{ExternalID: to, ContactID: l.ContactID}
		delete(links, old)
		moved = append(moved, old)
	}
	return order, moved, nil
}
