package sync

import (
	"context"
	"fmt"
	"slices"
	stdsync "sync"
	"time"

	"go.uber.org/zap"

	"github.com/syncd/syncd/lease"
	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/state"
)

// A full run is long (83 minutes of listing at a million contacts and a
// 100 ms round trip) and must not hold the project alone: a CRM edit made
// meanwhile would wait for it to end. So it holds the project's full-run
// lock, which keeps full runs to one at a time, for as long as it runs, and
// the project lock, which every run that writes takes, only while it writes
// a batch (write): its early patches while it lists, then its plan, a batch
// at a time. Between its batches partial runs (incremental, events) take
// the project lock and carry CRM and Sinch changes across within seconds.
//
// Before each batch the full run drops what changed under it (revalidate):
// an operation on a record or contact another run has written since the
// full run started, or on a record whose CRM row changed since its read
// began, is skipped, journaled with why; the partial run that saw the
// change has decided it, or will, from fresher facts. What cannot be undone
// is also checked against facts read just before it is sent (fresh).

// fullBatch bounds the operations a full run writes under one hold of the
// project lock: a partial run waits at most for one batch.
const fullBatch = 1000

// fullRun runs a full reconcile under the project's full-run lock.
func (r *Reconciler) fullRun(ctx context.Context, wait bool) (Report, error) {
	kind := state.RunFull
	take := r.Locks.TryLockFullRun
	if wait {
		take = r.Locks.LockFullRun
	}
	rep := Report{Kind: kind}
	err := r.holding(ctx, "full-run lock of project "+r.ProjectID,
		func(ctx context.Context) (*state.Lock, error) { return take(ctx, r.ProjectID) },
		func(ctx context.Context, lock *state.Lock, acquired time.Time) error {
			// What earlier runs left open is closed before this one writes
			// anything, as by any run; partial runs going on beside it are
			// left be.
			if err := r.closeInterrupted(ctx, acquired); err != nil {
				return lockLostErr(ctx, err)
			}
			var err error
			rep, err = r.run(ctx, lock, kind, r.full)
			return err
		})
	return rep, err
}

// lockHeld counts the project's locks this reconciler holds (a full run's
// and a partial run's may overlap), for the lock-held gauge.
func (r *Reconciler) lockHeld(held bool) {
	r.locksMu.Lock()
	defer r.locksMu.Unlock()
	was := r.locksHeld > 0
	if held {
		r.locksHeld++
	} else {
		r.locksHeld--
	}
	if now := r.locksHeld > 0; now != was {
		r.observer().SetLockHeld(now)
	}
}

// fullWrites is how a full run writes: under the project lock, a batch at
// a time, each revalidated against what changed since the run began.
type fullWrites struct {
	r     *Reconciler
	runID int64
	at    runTimes

	mu   stdsync.Mutex
	sess *lease.Session // on which the project lock is taken for each batch; opened by the first
}

// session is the session the run takes the project lock on: opened by the
// first batch, and again after a batch whose session ended (a wait cut
// short, a failed unlock, a session killed under it).
func (w *fullWrites) session(ctx context.Context) (*lease.Session, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sess == nil || w.sess.Closed() {
		s, err := w.r.Locks.LockSession(ctx)
		if err != nil {
			return nil, err
		}
		w.sess = s
	}
	return w.sess, nil
}

// close ends the session the run took the project lock on.
func (w *fullWrites) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sess != nil {
		w.sess.Close()
		w.sess = nil
	}
}

// write applies plan under the project lock, less what changed under the
// run (revalidate).
func (w *fullWrites) write(ctx context.Context, plan planner.Plan, opts applyOpts) (Report, error) {
	var rep Report
	sess, err := w.session(ctx)
	if err != nil {
		return rep, err
	}
	r := w.r
	err = r.holding(ctx, "lock of project "+r.ProjectID,
		func(ctx context.Context) (*state.Lock, error) { return r.Locks.LockOn(ctx, sess, r.ProjectID) },
		func(ctx context.Context, _ *state.Lock, _ time.Time) error {
			skip, err := w.revalidate(ctx, &plan)
			if err == nil {
				opts.skip = skip
				rep, err = r.apply(ctx, w.runID, plan, opts)
			}
			return lockLostErr(ctx, err)
		})
	if rep.RunID == 0 && err != nil {
		rep.Plan = plan
	}
	return rep, err
}

// writePlan writes a full run's plan a batch of groups at a time, the
// links it stores and drops with the last.
func (w *fullWrites) writePlan(ctx context.Context, plan planner.Plan, opts applyOpts) (Report, error) {
	var parts []Report
	var err error
	for start := 0; start < len(plan.Groups) || start == 0; {
		end, n := start, 0
		for end < len(plan.Groups) && (n == 0 || n+len(plan.Groups[end]) <= fullBatch) {
			n += len(plan.Groups[end])
			end++
		}
		batch := planner.Plan{DeleteGuard: plan.DeleteGuard}
		for _, g := range plan.Groups[start:end] {
			group := make([]int, len(g))
			for j, i := range g {
				group[j] = len(batch.Operations)
				batch.Operations = append(batch.Operations, plan.Operations[i])
			}
			batch.Groups = append(batch.Groups, group)
		}
		last := end >= len(plan.Groups)
		if last {
			batch.Links, batch.Unlinks, batch.Rejected = plan.Links, plan.Unlinks, plan.Rejected
		}
		var rep Report
		rep, err = w.write(ctx, batch, opts)
		parts = append(parts, rep)
		if err != nil || last {
			break
		}
		start = end
	}
	var rep Report
	rep.add(parts...)
	for _, p := range parts {
		rep.Withheld += p.Withheld
	}
	rep.Plan.Unchanged, rep.Plan.Notes, rep.Plan.DeleteGuard, rep.Plan.Rejected = plan.Unchanged, plan.Notes, plan.DeleteGuard, plan.Rejected
	return rep, err
}

// revalidate marks the operations of plan that something changed under
// since the run began, to be skipped with why: an operation on a record or
// contact another run journaled since the run started, on a record whose
// CRM row changed since the run's read began (to other content than the
// plan assumed, or deleted), or on an identity a record changed since then
// holds. The rest of a group goes with it, since what follows
// assumes what came before. The links the plan stores or drops are
// filtered the same way.
func (w *fullWrites) revalidate(ctx context.Context, plan *planner.Plan) (map[int]string, error) {
	r := w.r
	touched, err := r.Journal.TouchedSince(ctx, r.ProjectID, w.at.started, w.runID)
	if err != nil {
		return nil, err
	}
	changed, holders, err := r.changedSince(ctx, w.at.readStart)
	if err != nil {
		return nil, err
	}
	// A row deleted outright leaves nothing for ChangedSince to find: the
	// records the batch writes for are read again by external_id, in one
	// query, and those gone are not live now.
	var writesFor []string
	for _, op := range plan.Operations {
		if _, seen := changed[op.ExternalID]; !seen && !op.Removes() && op.ExternalID != "" {
			writesFor = append(writesFor, op.ExternalID)
		}
	}
	if len(writesFor) > 0 {
		slices.Sort(writesFor)
		writesFor = slices.Compact(writesFor)
		recs, err := r.CRM.RecordsByExternalID(ctx, r.Source, writesFor)
		unread, err := unreadableRows(err)
		if err != nil {
			return nil, fmt.Errorf("read again the records the run writes for: %w", err)
		}
		present := make(map[string]bool, len(recs)+len(unread))
		for _, rec := range recs {
			present[rec.ExternalID] = true
		}
		for _, rej := range unread {
			present[rej.ExternalID] = true // read as changed, or not, by ChangedSince
		}
		for _, ext := range writesFor {
			if !present[ext] {
				changed[ext] = ""
			}
		}
	}
	// A record that changed since the read and holds an identity an
	// operation weighed (an adoption's, a merge's) may claim it too now:
	// whose it is was decided without it.
	shares := func(op planner.Operation) bool {
		var ids []sinch.ChannelIdentity
		if op.Contact != nil {
			ids = append(ids, op.Contact.ChannelIdentities...)
		}
		for _, c := range op.Before {
			ids = append(ids, c.ChannelIdentities...)
		}
		for _, k := range planner.LookupKeys(ids) {
			if slices.ContainsFunc(holders[k], func(ext string) bool { return ext != op.ExternalID }) {
				return true
			}
		}
		return false
	}
	why := func(ext string, contacts ...string) string {
		if touched.ExternalIDs[ext] || slices.ContainsFunc(contacts, func(id string) bool { return id != "" && touched.ContactIDs[id] }) {
			return "another run wrote it since this full run began; that run decided it from fresher facts"
		}
		return ""
	}
	skip := make(map[int]string)
	for _, g := range plan.Groups {
		reason := ""
		for _, i := range g {
			op := plan.Operations[i]
			if reason = why(op.ExternalID, op.ContactID, op.SourceContactID); reason != "" {
				break
			}
			if h, ok := changed[op.ExternalID]; ok && (h == "" || h != op.Hash) {
				reason = "its CRM record changed since this full run read it; the incremental run that reads the change decides it"
				break
			}
			if len(holders) > 0 && shares(op) {
				reason = "a record changed since this full run read the CRM shares an identity with it; the incremental run that reads the change decides it"
				break
			}
		}
		if reason != "" {
			for _, i := range g {
				skip[i] = reason
			}
		}
	}
	plan.Links = slices.DeleteFunc(plan.Links, func(l planner.Link) bool {
		_, moved := changed[l.ExternalID]
		return moved || why(l.ExternalID, l.ContactID) != ""
	})
	plan.Unlinks = slices.DeleteFunc(plan.Unlinks, func(ext string) bool {
		_, moved := changed[ext]
		return moved || why(ext) != ""
	})
	if len(skip) > 0 {
		r.Logger.Info("a full run skips what changed under it since it began", zap.Int64("run_id", w.runID), zap.Int("operations", len(skip)))
	}
	return skip, nil
}

// changedSince reads the CRM rows changed since a full run's read began:
// changed maps each row's external_id to its content hash now ("" when it
// is not live), holders each lookup key to the live rows that hold it.
func (r *Reconciler) changedSince(ctx context.Context, readStart time.Time) (changed map[string]string, holders map[string][]string, err error) {
	changed, holders = make(map[string]string), make(map[string][]string)
	for batch, err := range r.CRM.ChangedSince(ctx, r.Source, readStart, r.BatchSize) {
		if rej, ok := unreadable(err); ok {
			changed[rej.ExternalID] = ""
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read the CRM rows changed since the run's read: %w", err)
		}
		for _, rec := range batch {
			want, rej := planner.Normalize(rec, r.Options)
			if rej != nil || want.Deleted {
				changed[rec.ExternalID] = ""
				continue
			}
			changed[rec.ExternalID] = want.Hash
			for _, k := range planner.LookupKeys(want.Identities) {
				holders[k] = append(holders[k], rec.ExternalID)
			}
		}
	}
	return changed, holders, nil
}
