package sync

import (
	"context"
	"fmt"
	"maps"
	stdsync "sync"

	"golang.org/x/sync/errgroup"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/state"
)

// Stale is an operation of a saved plan that apply refused.
type Stale struct {
	Operation planner.Operation `json:"operation"`
	Reason    string            `json:"reason"`
}

// ApplySaved applies a saved plan under the project lock, after checking
// every operation's preconditions against both sides as they are now: the
// CRM record must be in the state the plan saw (same content hash), the
// contacts it touches must be unchanged, and a create must still find no
// contact with its external_id. Operations on one external_id stand or fall
// together, since a patch planned after a merge assumes the merge.
func (r *Reconciler) ApplySaved(ctx context.Context, sp planner.SavedPlan, wait bool) (Report, []Stale, error) {
	if sp.Version != planner.SavedPlanVersion {
		return Report{}, nil, fmt.Errorf("saved plan version %d, this syncd reads version %d", sp.Version, planner.SavedPlanVersion)
	}
	if sp.ProjectID != r.ProjectID {
		return Report{}, nil, fmt.Errorf("the plan is for project %s, the configuration for %s", sp.ProjectID, r.ProjectID)
	}
	var stale []Stale
	rep, err := r.locked(ctx, state.RunApply, wait, func(ctx context.Context, runID int64, _ runTimes) (Report, error) {
		stale = nil
		reasons, err := r.checkSaved(ctx, sp)
		if err != nil {
			return Report{}, err
		}
		var plan planner.Plan
		if !r.Options.AllowMassDelete {
			plan.DeleteGuard = sp.DeleteGuard
		}
		plan.Rejected = sp.Rejected
		kept := make([]int, len(sp.Operations)) // saved position -> position in plan, -1 refused
		for i, so := range sp.Operations {
			kept[i] = -1
			if why, bad := reasons[so.ExternalID]; bad {
				stale = append(stale, Stale{Operation: so.Operation, Reason: why})
				continue
			}
			kept[i] = len(plan.Operations)
			op := so.Operation
			op.Hash = so.Hash
			if op.Kind == planner.OpMerge || op.Kind == planner.OpDelete {
				op.Before = so.Before
			}
			plan.Operations = append(plan.Operations, op)
		}
		// The saved order, less what was refused.
		for _, g := range sp.Groups {
			var group []int
			for _, i := range g {
				if kept[i] >= 0 {
					group = append(group, kept[i])
				}
			}
			if len(group) > 0 {
				plan.Groups = append(plan.Groups, group)
			}
		}
		rep, err := r.Apply(ctx, runID, plan)
		rep.Refused = len(stale)
		return rep, err
	})
	return rep, stale, err
}

// checkSaved returns, by external_id, why the operations on it no longer hold.
func (r *Reconciler) checkSaved(ctx context.Context, sp planner.SavedPlan) (map[string]string, error) {
	byExt := make(map[string][]planner.SavedOperation)
	var order []string
	for _, so := range sp.Operations {
		if _, ok := byExt[so.ExternalID]; !ok {
			order = append(order, so.ExternalID)
		}
		byExt[so.ExternalID] = append(byExt[so.ExternalID], so)
	}
	var mu stdsync.Mutex
	reasons := make(map[string]string)
	records, err := r.CRM.RecordsByExternalID(ctx, crm.Source{Relation: sp.Source, Filter: sp.Filter}, order)
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

func recordChanged(so planner.SavedOperation, now map[string]crm.Record, ext string, opts planner.Options) string {
	rec, ok := now[ext]
	state := planner.RecordAbsent
	if ok {
		state = planner.RecordLive
		if rec.Deleted() {
			state = planner.RecordDeleted
		}
	}
	if state != so.RecordState {
		return fmt.Sprintf("the CRM record was %s when planned and is %s now", so.RecordState, state)
	}
	if state == planner.RecordLive {
		want, rej := planner.Normalize(rec, opts)
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
func (r *Reconciler) contactsChanged(ctx context.Context, so planner.SavedOperation) (string, error) {
	if so.Kind == planner.OpCreate {
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
		if !planner.SameContact(*now, before) {
			return fmt.Sprintf("contact %s changed in Sinch since the plan was made", before.ID), nil
		}
	}
	return "", nil
}
