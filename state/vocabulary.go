package state

import "github.com/syncd/syncd/planner"

// The words syncd's state is written in. They are defined here, once,
// because they are what the tables hold; the reconciler, the metrics and the
// commands use these types and lists rather than spelling them again. The
// kinds of operation a journal entry records are the planner's
// (planner.OpKind), since a plan is what decides them.

// RunKind is what a run covers (syncd.runs.kind).
type RunKind string

// Run kinds.
const (
	RunFull        RunKind = "full"        // every contact, every row
	RunIncremental RunKind = "incremental" // the rows changed since the watermark
	RunApply       RunKind = "apply"       // a plan saved by syncd diff --out
	RunEvents      RunKind = "event"       // the contacts stored Sinch events name
)

// Outcome is how a run ended (syncd.runs.outcome).
type Outcome string

// Run outcomes. OutcomeRunning is the outcome of a run that has not
// finished; after a crash it stays until the next holder of the project lock
// closes the run as OutcomeInterrupted.
const (
	OutcomeRunning     Outcome = "running"
	OutcomeSucceeded   Outcome = "succeeded"
	OutcomeFailed      Outcome = "failed"
	OutcomeInterrupted Outcome = "interrupted"
	// OutcomeRefused is an apply of a saved plan that refused every
	// operation as stale: it changed nothing, which is no success.
	OutcomeRefused Outcome = "refused"
)

// KindReject is the journal kind (syncd.journal.kind) of a CRM row or a
// contact a run rejected, which is no call to Sinch; every other entry's
// kind is the operation's.
const KindReject planner.OpKind = "reject"

// Status is where a journal entry stands (syncd.journal.status).
type Status string

// Journal statuses.
const (
	StatusPending  Status = "pending"  // journaled, not answered yet
	StatusDone     Status = "done"     // Sinch confirmed it
	StatusFailed   Status = "failed"   // Sinch refused it or could not be reached
	StatusSkipped  Status = "skipped"  // not sent: withheld by the guard, or an earlier step failed
	StatusRejected Status = "rejected" // a CRM row or a contact Sinch answered with a 400
	// StatusUnknown is an operation whose answer was lost in a way that
	// leaves open whether Sinch applied it; the next run reads Sinch afresh
	// and finds out.
	StatusUnknown Status = "unknown"
)

// RunKinds are the kinds of run.
func RunKinds() []RunKind { return []RunKind{RunFull, RunIncremental, RunApply, RunEvents} }

// FinishedOutcomes are the outcomes of a run that has ended.
func FinishedOutcomes() []Outcome {
	return []Outcome{OutcomeSucceeded, OutcomeFailed, OutcomeInterrupted, OutcomeRefused}
}

// FinalStatuses are the journal statuses of an operation that has ended.
func FinalStatuses() []Status {
	return []Status{StatusDone, StatusFailed, StatusSkipped, StatusRejected, StatusUnknown}
}
