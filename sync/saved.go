package sync

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	stdsync "sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/sinch"
)

// SavedPlanVersion is the format version of a saved plan file.
const SavedPlanVersion = 1

// SavedPlan is a plan written by `syncd diff --out` for review, with what
// each operation assumed, so that `syncd apply` can refuse what has changed
// since.
type SavedPlan struct {
	Version     int              `json:"version"`
	CreatedAt   time.Time        `json:"created_at"`
	ProjectID   string           `json:"project_id"`
	Source      string           `json:"source"`
	Filter      string           `json:"filter,omitempty"` // crm.filter: which of Source's rows the plan read
	Summary     Summary          `json:"summary"`
	DeleteGuard string           `json:"delete_guard,omitempty"`
	Operations  []SavedOperation `json:"operations"`
	Rejected    []Rejection      `json:"rejected"`
}

// SavedOperation is an operation with its preconditions.
type SavedOperation struct {
	Operation
	Hash string `json:"record_hash"`
	// Before are the contacts the operation touches as the diff saw them
	// (the destination, and the source of a merge); none for a create.
	Before []sinch.Contact `json:"before"`
	// RecordState is the CRM record as the diff saw it: "live", "deleted"
	// or "absent".
	RecordState string `json:"record_state"`
}

// Record states of a saved operation.
const (
	RecordLive    = "live"
	RecordDeleted = "deleted"
	RecordAbsent  = "absent"
)

// Save freezes a plan with the state of both sides it was computed from.
func Save(plan Plan, snap *Snapshot, projectID string, now time.Time) SavedPlan {
	sp := SavedPlan{
		Version: SavedPlanVersion, CreatedAt: now, ProjectID: projectID, Source: snap.source.Relation, Filter: snap.source.Filter,
		Summary: plan.Summary(), DeleteGuard: plan.DeleteGuard, Rejected: plan.Rejected,
		Operations: make([]SavedOperation, 0, len(plan.Operations)),
	}
	for _, op := range plan.Operations {
		so := SavedOperation{Operation: op, Hash: op.Hash, RecordState: snap.RecordState(op.ExternalID)}
		for _, id := range []string{op.ContactID, op.SourceContactID} {
			if c, ok := snap.contactByID(id); ok && id != "" {
				so.Before = append(so.Before, c)
			}
		}
		sp.Operations = append(sp.Operations, so)
	}
	return sp
}

// Stale is an operation of a saved plan that apply refused.
type Stale struct {
	Operation Operation `json:"operation"`
	Reason    string    `json:"reason"`
}

// ApplySaved applies a saved plan under the project lock, after checking
// every operation's preconditions against both sides as they are now: the
// CRM record must be in the state the plan saw (same content hash), the
// contacts it touches must be unchanged, and a create must still find no
// contact with its external_id. Operations on one external_id stand or fall
// together, since a patch planned after a merge assumes the merge.
func (r *Reconciler) ApplySaved(ctx context.Context, sp SavedPlan, wait bool) (Report, []Stale, error) {
	if sp.Version != SavedPlanVersion {
		return Report{}, nil, fmt.Errorf("saved plan version %d, this syncd reads version %d", sp.Version, SavedPlanVersion)
	}
	if sp.ProjectID != r.ProjectID {
		return Report{}, nil, fmt.Errorf("the plan is for project %s, the configuration for %s", sp.ProjectID, r.ProjectID)
	}
	var stale []Stale
	rep, err := r.locked(ctx, RunApply, wait, func(ctx context.Context, runID int64) (Report, error) {
		stale = nil
		reasons, err := r.checkSaved(ctx, sp)
		if err != nil {
			return Report{}, err
		}
		var plan Plan
		if !r.Options.AllowMassDelete {
			plan.DeleteGuard = sp.DeleteGuard
		}
		plan.Rejected = sp.Rejected
		for _, so := range sp.Operations {
			if why, bad := reasons[so.ExternalID]; bad {
				stale = append(stale, Stale{Operation: so.Operation, Reason: why})
				continue
			}
			op := so.Operation
			op.Hash = so.Hash
			if op.Kind == OpMerge || op.Kind == OpDelete {
				op.Before = so.Before
			}
			plan.Operations = append(plan.Operations, op)
		}
		rep, err := r.Apply(ctx, runID, plan)
		rep.Refused = len(stale)
		return rep, err
	})
	return rep, stale, err
}

// checkSaved returns, by external_id, why the operations on it no longer hold.
func (r *Reconciler) checkSaved(ctx context.Context, sp SavedPlan) (map[string]string, error) {
	byExt := make(map[string][]SavedOperation)
	var order []string
	for _, so := range sp.Operations {
		if _, ok := byExt[so.ExternalID]; !ok {
			order = append(order, so.ExternalID)
		}
		byExt[so.ExternalID] = append(byExt[so.ExternalID], so)
	}
	var mu stdsync.Mutex
	reasons := make(map[string]string)
	records, err := r.Store.RecordsByExternalID(ctx, crm.Source{Relation: sp.Source, Filter: sp.Filter}, order)
	unread, err := unreadableRows(err)
	if err != nil {
		return nil, fmt.Errorf("read CRM records: %w", err)
	}
	for _, rej := range unread {
		reasons[rej.ExternalID] = "the CRM record cannot be read: " + rej.String()
	}
	now := make(map[string]crm.Record, len(records))
	for _, rec := range records {
		now[rec.ExternalID] = rec
	}

	stale := func(ext, why string) {
		mu.Lock()
		defer mu.Unlock()
		if _, ok := reasons[ext]; !ok {
			reasons[ext] = why
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, r.Concurrency))
	// Rows that could not be read are stale already; the map is written
	// concurrently below, so look them up in a copy.
	unreadableRows := maps.Clone(reasons)
	for _, ext := range order {
		ops := byExt[ext]
		if _, bad := unreadableRows[ext]; bad {
			continue
		}
		if why := recordChanged(ops[0], now, ext, r.Options); why != "" {
			stale(ext, why)
			continue
		}
		g.Go(func() error {
			for _, so := range ops {
				why, err := r.contactsChanged(gctx, so)
				if err != nil {
					return err
				}
				if why != "" {
					stale(ext, why)
					return nil
				}
			}
			return nil
		})
	}
	return reasons, g.Wait()
}

func recordChanged(so SavedOperation, now map[string]crm.Record, ext string, opts Options) string {
	rec, ok := now[ext]
	state := RecordAbsent
	if ok {
		state = RecordLive
		if rec.Deleted() {
			state = RecordDeleted
		}
	}
	if state != so.RecordState {
		return fmt.Sprintf("the CRM record was %s when planned and is %s now", so.RecordState, state)
	}
	if state == RecordLive {
		want, rej := Normalize(rec, opts)
		if rej != nil {
			return "the CRM record is now rejected: " + rej.String()
		}
		if want.Hash != so.Hash {
			return "the CRM record changed since the plan was made"
		}
	}
	return ""
}

// contactsChanged compares the contacts an operation touches with what the
// plan saw, one GET each; a create checks that its external_id is still free.
func (r *Reconciler) contactsChanged(ctx context.Context, so SavedOperation) (string, error) {
	if so.Kind == OpCreate {
		found, err := r.Sinch.FindByExternalID(ctx, so.ExternalID)
		if err != nil {
			return "", err
		}
		if len(found) > 0 {
			return fmt.Sprintf("contact %s now carries external_id %s", found[0].ID, so.ExternalID), nil
		}
		return "", nil
	}
	for _, before := range so.Before {
		now, err := r.Sinch.GetContact(ctx, before.ID)
		if sinch.IsNotFound(err) {
			return fmt.Sprintf("contact %s no longer exists", before.ID), nil
		}
		if err != nil {
			return "", err
		}
		if !sameContact(*now, before) {
			return fmt.Sprintf("contact %s changed in Sinch since the plan was made", before.ID), nil
		}
	}
	return "", nil
}

// sameContact compares two contacts as Sinch shows them; empty and missing
// values are the same thing.
func sameContact(a, b sinch.Contact) bool {
	norm := func(c sinch.Contact) sinch.Contact {
		if len(c.ChannelIdentities) == 0 {
			c.ChannelIdentities = nil
		}
		if len(c.ChannelPriority) == 0 {
			c.ChannelPriority = nil
		}
		return c
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

// ReadSavedPlan decodes a plan file.
func ReadSavedPlan(data []byte) (SavedPlan, error) {
	var sp SavedPlan
	if err := json.Unmarshal(data, &sp); err != nil {
		return sp, fmt.Errorf("not a syncd plan file: %w", err)
	}
	return sp, nil
}
