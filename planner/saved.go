package planner

import (
	"encoding/json"
	"fmt"
	"time"

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
	// Groups are the plan's groups (Plan.Groups), which apply runs as
	// given; a file without them is ordered afresh when read.
	Groups   [][]int     `json:"groups,omitempty"`
	Rejected []Rejection `json:"rejected"`
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

// Save freezes a plan with the state of both sides it was computed from.
func Save(plan Plan, idx *Index, projectID string, now time.Time) SavedPlan {
	sp := SavedPlan{
		Version: SavedPlanVersion, CreatedAt: now, ProjectID: projectID, Source: idx.source.Relation, Filter: idx.source.Filter,
		Summary: plan.Summary(), DeleteGuard: plan.DeleteGuard, Rejected: plan.Rejected,
		Operations: make([]SavedOperation, 0, len(plan.Operations)), Groups: plan.Groups,
	}
	for _, op := range plan.Operations {
		so := SavedOperation{Operation: op, Hash: op.Hash, RecordState: idx.RecordState(op.ExternalID)}
		for _, id := range []string{op.ContactID, op.SourceContactID} {
			if c, ok := idx.contactByID(op.ExternalID, id); ok && id != "" {
				so.Before = append(so.Before, c)
			}
		}
		sp.Operations = append(sp.Operations, so)
	}
	return sp
}

// ReadSavedPlan decodes a plan file.
func ReadSavedPlan(data []byte) (SavedPlan, error) {
	var sp SavedPlan
	if err := json.Unmarshal(data, &sp); err != nil {
		return sp, fmt.Errorf("not a syncd plan file: %w", err)
	}
	ops := make([]Operation, len(sp.Operations))
	for i, so := range sp.Operations {
		ops[i] = so.Operation
	}
	if sp.Groups == nil {
		sp.Groups = Order(ops)
	}
	if err := (Plan{Operations: ops, Groups: sp.Groups}).CheckGroups(); err != nil {
		return sp, fmt.Errorf("not a valid syncd plan file: %w", err)
	}
	return sp, nil
}
