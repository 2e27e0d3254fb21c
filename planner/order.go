package planner

import (
	"fmt"
	"slices"

	"github.com/syncd/syncd/sinch"
)

// Order groups the operations that must run one after another,
// each group in the order they must run: those of one external_id, in plan
// order, and with them each operation that frees an external_id (a patch
// that gives a contact its external_id back or re-keys it, the delete of a
// gone record's contact that a hand edit keyed to a live one), before the
// create or patch that gives that external_id to another contact. Run side
// by side, a run cut short between the two would leave a record with two
// contacts; in one group, a failed operation skips the rest. The diff
// breaks the cycles a swap makes (breakSwaps); were one left, it would run
// in plan order.
func Order(ops []Operation) [][]int {
	at := make(map[string]int) // external_id -> its group
	var groups [][]int
	for i, op := range ops {
		g, ok := at[op.ExternalID]
		if !ok {
			g = len(groups)
			at[op.ExternalID] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	var joins [][2]int // groups of a freeing operation and of what it frees
	for _, op := range ops {
		if freed := freedExternalID(op); freed != "" && freed != op.ExternalID {
			if g, ok := at[freed]; ok {
				joins = append(joins, [2]int{at[op.ExternalID], g})
			}
		}
	}
	if len(joins) == 0 {
		return groups
	}
	// Groups joined so far point at the one that holds their operations.
	into := make([]int, len(groups))
	for g := range into {
		into[g] = g
	}
	find := func(g int) int {
		for into[g] != g {
			into[g] = into[into[g]]
			g = into[g]
		}
		return g
	}
	for _, j := range joins {
		from, to := find(j[1]), find(j[0])
		if from != to {
			groups[to] = append(groups[to], groups[from]...)
			groups[from] = nil
			into[from] = to
		}
	}
	ordered := make(map[int]bool) // a group several operations joined is ordered once
	for _, j := range joins {
		if r := find(j[0]); !ordered[r] && len(groups[r]) > 1 {
			ordered[r] = true
			order(ops, groups[r])
		}
	}
	return slices.DeleteFunc(groups, func(g []int) bool { return len(g) == 0 })
}

// order sorts a group of operations so that each comes after the earlier
// ones of its external_id and after those that free the external_id it
// gives to a contact, the earliest in the plan first among those ready
// (Kahn's algorithm). What a cycle leaves keeps its plan order.
func order(ops []Operation, g []int) {
	slices.Sort(g)
	waits := make(map[int]int, len(g))
	then := make(map[int][]int, len(g)) // operation -> those that wait for it
	last := make(map[string]int)
	freedBy := make(map[string][]int)
	for _, i := range g {
		if freed := freedExternalID(ops[i]); freed != "" && freed != ops[i].ExternalID {
			freedBy[freed] = append(freedBy[freed], i)
		}
	}
	for _, i := range g {
		ext := ops[i].ExternalID
		if j, ok := last[ext]; ok {
			then[j] = append(then[j], i)
			waits[i]++
		}
		last[ext] = i
		if setsExternalID(ops[i]) {
			for _, j := range freedBy[ext] {
				then[j] = append(then[j], i)
				waits[i]++
			}
		}
	}
	var ready, out []int
	for _, i := range g {
		if waits[i] == 0 {
			ready = append(ready, i)
		}
	}
	placed := make(map[int]bool, len(g))
	for len(ready) > 0 {
		k := slices.Index(ready, slices.Min(ready))
		i := ready[k]
		ready = slices.Delete(ready, k, k+1)
		out = append(out, i)
		placed[i] = true
		for _, j := range then[i] {
			if waits[j]--; waits[j] == 0 {
				ready = append(ready, j)
			}
		}
	}
	for _, i := range g {
		if !placed[i] {
			out = append(out, i)
		}
	}
	copy(g, out)
}

// setsExternalID reports whether the operation gives its external_id to a
// contact that did not carry it.
func setsExternalID(op Operation) bool {
	if op.Kind == OpCreate {
		return true
	}
	if op.Kind != OpPatch {
		return false
	}
	for _, c := range op.Changes {
		if c.Field == sinch.FieldExternalID {
			return c.New == op.ExternalID && c.Old != c.New
		}
	}
	return false
}

// freedExternalID is the external_id a patch takes away from its contact
// for another one, or a delete from the world: the contact of a gone record
// that a hand edit gave a live record's external_id ("" for any other
// operation).
func freedExternalID(op Operation) string {
	if op.Kind == OpDelete {
		if len(op.Before) > 0 && op.Before[0].ExternalID != "" && op.Before[0].ExternalID != op.ExternalID {
			return op.Before[0].ExternalID
		}
		return ""
	}
	if op.Kind != OpPatch {
		return ""
	}
	for _, c := range op.Changes {
		if c.Field == sinch.FieldExternalID && c.Old != "" && c.Old != c.New {
			return c.Old
		}
	}
	return ""
}

// CheckGroups reports a plan whose groups do not hold each of its
// operations exactly once: applied, some would be sent twice or never.
func (p Plan) CheckGroups() error {
	seen := make([]bool, len(p.Operations))
	n := 0
	for _, g := range p.Groups {
		for _, i := range g {
			if i < 0 || i >= len(seen) || seen[i] {
				return fmt.Errorf("planner: the plan's groups name operation %d twice or out of range", i)
			}
			seen[i] = true
			n++
		}
	}
	if n != len(p.Operations) {
		return fmt.Errorf("planner: the plan's groups hold %d of its %d operations", n, len(p.Operations))
	}
	return nil
}
