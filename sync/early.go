package sync

import (
	"context"
	stdsync "sync"

	"github.com/syncd/syncd/sinch"
)

// early applies, while a full run is still listing contacts, the patches
// that no later page can change: a contact linked to a live CRM record whose
// fields differ. A duplicate found on a later page is merged into the linked
// contact anyway, and the final diff starts from what these patches left, so
// sending them early changes when they happen, not what the run does.
// Creates, merges and deletes wait for the whole list.
type early struct {
	r     *Reconciler
	ctx   context.Context // the run's: once cancelled, no new patch starts
	runID int64

	prep   *prepared       // the CRM side, normalised and indexed, links included
	packed *packedContacts // where the run holds the contacts, if packed

	work chan Plan
	done chan struct{}
	mu   stdsync.Mutex
	// parts are the reports of the batches, folded into one by wait: one
	// Report.add per batch would copy every earlier operation each time.
	parts   []Report
	answers packedContacts // the contacts as Sinch answered the patches
	rep     Report
	folded  bool
}

func (e *early) crm(snap *Snapshot) {
	e.prep, e.packed = snap.prep, snap.packed
	e.work = make(chan Plan, 1024) // apply gathers what queued; a full queue holds the watcher, not the list
	e.done = make(chan struct{})
	go e.apply()
}

func (e *early) page(contacts []sinch.Contact) {
	var plan Plan
	for _, c := range contacts {
		if c.ExternalID == "" {
			continue
		}
		want, linked, ok := e.prep.lookup(c.ExternalID)
		if !ok || linked != c.ID {
			continue
		}
		body, mask, changes := patchFor(c, want, false)
		if len(mask) == 0 {
			continue
		}
		patch := body // allocated only for a patch that is made
		plan.Operations = append(plan.Operations, Operation{
			Kind: OpPatch, ExternalID: c.ExternalID, ContactID: c.ID, UpdateMask: mask, Rule: RuleDrift,
			Reason: "the contact differs from the CRM record", Changes: changes, Contact: &patch, Hash: want.Hash,
		})
	}
	if len(plan.Operations) > 0 {
		e.work <- plan
	}
}

func (e *early) listed() {
	if e.work != nil {
		close(e.work)
	}
}

// maxEarlyBatch bounds the patches applied as one plan.
const maxEarlyBatch = 1000

// apply sends the early patches concurrently, so that the list chain is
// never held up. The patches of every page that arrived while the previous
// batch was being sent go out together: one journal append, one batch of
// marks and one link save per batch rather than per page, which is what
// lets the patches keep up with the list chain.
func (e *early) apply() {
	defer close(e.done)
	for plan := range e.work {
	gather:
		for len(plan.Operations) < maxEarlyBatch {
			select {
			case more, ok := <-e.work:
				if !ok {
					break gather
				}
				plan.Operations = append(plan.Operations, more.Operations...)
			default:
				break gather
			}
		}
		if e.ctx.Err() != nil {
			continue // drain: the final diff, if any, plans these again
		}
		rep, err := e.r.Apply(e.ctx, e.runID, plan)
		e.mu.Lock()
		if err != nil {
			rep.Errors = append(rep.Errors, err.Error())
			rep.Failed += len(plan.Operations) - rep.Applied.Patch
		}
		rep.Plan.Unchanged = 0
		e.answers.add(rep.answers)
		rep.answers = nil
		e.parts = append(e.parts, rep)
		e.mu.Unlock()
	}
}

// wait returns once every early patch has an answer.
func (e *early) wait() Report {
	if e.done != nil {
		<-e.done
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.folded {
		e.folded = true
		e.rep = Report{}
		e.rep.add(e.parts...)
		e.parts = nil
		if e.packed != nil {
			e.packed.replace(&e.answers)
		}
	}
	return e.rep
}

// updated replaces contacts that early patches changed with Sinch's answers.
// (Packed contacts were replaced in wait.)
func (e *early) updated(contacts []sinch.Contact) []sinch.Contact {
	if e.answers.len() == 0 || len(contacts) == 0 {
		return contacts
	}
	answers := e.answers.unpack()
	byID := make(map[string]sinch.Contact, len(answers))
	for _, c := range answers {
		byID[c.ID] = c
	}
	for i, c := range contacts {
		if a, ok := byID[c.ID]; ok {
			contacts[i] = a
		}
	}
	return contacts
}
