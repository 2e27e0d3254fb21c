package planner

import (
	"fmt"
	"maps"
	"slices"

	"github.com/syncd/syncd/sinch"
)

// The order of a plan's operations is decided here, once, after the diff:
// no run, however cut short, may leave two contacts carrying one
// external_id. guardCarriers withdraws what would, breakSwaps splits the
// cycles a swap makes, and Order groups what must run one after another;
// apply runs the groups as given.

// guardCarriers withdraws the operations of every record whose external_id
// the plan would give to a contact (a create, a patch putting it back)
// while another contact keeps carrying it: a contact a hand edit keyed to
// it that the plan does not free, since the delete guard withholds its
// delete, or its own record's operations were withdrawn in turn. Sent, they would leave
// two contacts carrying one external_id. The record waits for the run that
// frees it.
func (d *differ) guardCarriers() {
	keepers := slices.Clone(d.foreign)
	for _, i := range slices.Sorted(maps.Keys(d.leftBehind)) {
		if k := d.leftBehind[i]; !d.owns(k, i) {
			keepers = append(keepers, i) // not settled as the record's own
		}
	}
	if len(keepers) == 0 {
		return
	}
	for {
		freed := make(map[string]bool)
		for _, op := range d.plan.Operations {
			switch withheld := d.plan.DeleteGuard != "" && op.Removes(); {
			case withheld:
			case op.Kind == OpMerge:
				freed[op.SourceContactID] = true
			case op.Kind == OpDelete || freedExternalID(op) != "":
				freed[op.ContactID] = true
			}
		}
		setters := make(map[string]bool)
		for _, op := range d.plan.Operations {
			if setsExternalID(op) {
				setters[op.ExternalID] = true
			}
		}
		waiting := make(map[string]string) // external_id -> the contact that keeps it
		for _, i := range keepers {
			if id, ext := d.idx.contacts.ids(i); setters[ext] && !freed[id] {
				waiting[ext] = id
			}
		}
		if len(waiting) == 0 {
			return
		}
		d.plan.Operations = slices.DeleteFunc(d.plan.Operations, func(op Operation) bool {
			_, wait := waiting[op.ExternalID]
			return wait && !op.Removes()
		})
		for _, ext := range slices.Sorted(maps.Keys(waiting)) {
			d.plan.Notes = append(d.plan.Notes, fmt.Sprintf(
				"%s: waits: contact %s, another record's, still carries its external_id (a hand edit) and this run does not free it; a later run does first",
				ext, waiting[ext]))
		}
	}
}

// breakSwaps breaks the cycles of patches that each give a contact its
// external_id back and take another's from it (two linked contacts whose
// external_ids were swapped in Sinch): each waits for the other, and either
// order leaves two contacts carrying one external_id for a moment, for good
// if the run is cut short there. The first patch of each cycle is split: a
// patch that clears its contact's external_id goes first, and the rest of
// it, setting the record's, waits its turn (Order).
func (d *differ) breakSwaps() {
	ops := d.plan.Operations
	freer := make(map[string]int) // external_id -> the patch that takes it from its contact for another
	for i, op := range ops {
		if old := freedExternalID(op); old != "" && op.Kind == OpPatch && setsExternalID(op) {
			freer[old] = i
		}
	}
	if len(freer) < 2 {
		return
	}
	const (
		unseen = iota
		onPath
		done
	)
	state := make(map[int]int, len(freer))
	var split []int
	for _, start := range slices.Sorted(maps.Values(freer)) {
		var path []int
		i, ok := start, true
		for ok && state[i] == unseen {
			state[i] = onPath
			path = append(path, i)
			i, ok = freer[ops[i].ExternalID] // the patch this one waits for
		}
		if ok && state[i] == onPath {
			cycle := path[slices.Index(path, i):]
			split = append(split, slices.Min(cycle))
		}
		for _, j := range path {
			state[j] = done
		}
	}
	if len(split) == 0 {
		return
	}
	slices.Sort(split)
	out := make([]Operation, 0, len(ops)+len(split))
	for i, op := range ops {
		if _, found := slices.BinarySearch(split, i); found {
			k := slices.IndexFunc(op.Changes, func(c Change) bool { return c.Field == sinch.FieldExternalID })
			old := op.Changes[k].Old
			out = append(out, Operation{
				Kind: OpPatch, ExternalID: op.ExternalID, ContactID: op.ContactID, UpdateMask: []string{sinch.FieldExternalID},
				Rule: op.Rule, Reason: fmt.Sprintf("contact %s carries %s, which another contact gets back first, so its external_id is cleared before it gets %s", op.ContactID, old, op.ExternalID),
				Changes: []Change{{Field: sinch.FieldExternalID, Old: old, New: ""}},
				Contact: &sinch.Contact{},
			})
			op.Changes = slices.Clone(op.Changes)
			op.Changes[k].Old = ""
		}
		out = append(out, op)
	}
	d.plan.Operations = out
}

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
