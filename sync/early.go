package sync

import (
	"context"
	stdsync "sync"

	"github.com/syncd/syncd/crm"
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

	want  map[string]Desired // live, valid, unique records by external_id
	links map[string]crm.Link

	work chan Plan
	done chan struct{}
	mu   stdsync.Mutex
	rep  Report
}

func (e *early) crm(records []crm.Record, links map[string]crm.Link) {
	count := make(map[string]int, len(records))
	for _, rec := range records {
		count[rec.ExternalID]++
	}
	e.want = make(map[string]Desired, len(records))
	for _, rec := range records {
		if count[rec.ExternalID] != 1 {
			continue
		}
		if d, rej := Normalize(rec, e.r.Options); rej == nil && !d.Deleted {
			e.want[rec.ExternalID] = d
		}
	}
	e.links = links
	e.work = make(chan Plan, 1<<16)
	e.done = make(chan struct{})
	go e.apply()
}

func (e *early) page(contacts []sinch.Contact) {
	var plan Plan
	for _, c := range contacts {
		want, ok := e.want[c.ExternalID]
		if !ok || e.links[c.ExternalID].ContactID != c.ID {
			continue
		}
		body, mask, changes := patchFor(c, want, false)
		if len(mask) == 0 {
			continue
		}
		plan.Operations = append(plan.Operations, Operation{
			Kind: OpPatch, ExternalID: c.ExternalID, ContactID: c.ID, UpdateMask: mask, Rule: RuleDrift,
			Reason: "the contact differs from the CRM record", Changes: changes, Contact: &body, Hash: want.Hash,
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

// apply sends the early patches one page at a time, each page's patches
// concurrently, so that the list chain is never held up.
func (e *early) apply() {
	defer close(e.done)
	for plan := range e.work {
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
		e.rep.add(rep)
		e.rep.answers = append(e.rep.answers, rep.answers...)
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
	return e.rep
}

// updated replaces contacts that early patches changed with Sinch's answers.
func (e *early) updated(contacts []sinch.Contact) []sinch.Contact {
	if len(e.rep.answers) == 0 {
		return contacts
	}
	byID := make(map[string]sinch.Contact, len(e.rep.answers))
	for _, c := range e.rep.answers {
		byID[c.ID] = c
	}
	for i, c := range contacts {
		if a, ok := byID[c.ID]; ok {
			contacts[i] = a
		}
	}
	return contacts
}
