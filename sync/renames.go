package sync

import (
	stdsync "sync"
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
