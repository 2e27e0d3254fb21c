package state

// The words syncd's state is written in. They are defined here, once, because
// they are what the tables hold; the reconciler, the metrics and the
// commands use these constants and lists rather than spelling them again.

// Run kinds (syncd.runs.kind).
const (
	RunFull        = "full"        // every contact, every row
	RunIncremental = "incremental" // the rows changed since the watermark
	RunApply       = "apply"       // a plan saved by syncd diff --out
	RunEvents      = "event"       // the contacts stored Sinch events name
)

// Run outcomes (syncd.runs.outcome). RunRunning is the outcome of a run that
// has not finished; after a crash it stays until the next holder of the
// project lock closes the run as RunInterrupted.
const (
	RunRunning     = "running"
	RunSucceeded   = "succeeded"
	RunFailed      = "failed"
	RunInterrupted = "interrupted"
	// RunRefused is an apply of a saved plan that refused every operation
	// as stale: it changed nothing, which is no success.
	RunRefused = "refused"
)

// Journal kinds (syncd.journal.kind): the operations a plan sends, and the
// rows and contacts it rejects.
const (
	JournalCreate = "create"
	JournalPatch  = "patch"
	JournalMerge  = "merge"
	JournalDelete = "delete"
	JournalReject = "reject"
)

// Journal statuses (syncd.journal.status).
const (
	JournalPending  = "pending"  // journaled, not answered yet
	JournalDone     = "done"     // Sinch confirmed it
	JournalFailed   = "failed"   // Sinch refused it or could not be reached
	JournalSkipped  = "skipped"  // not sent: withheld by the guard, or an earlier step failed
	JournalRejected = "rejected" // a CRM row or a contact Sinch answered with a 400
	JournalUnknown  = "unknown"  // the answer was lost: the next run finds out what happened
)

// RunKinds are the kinds of run.
func RunKinds() []string { return []string{RunFull, RunIncremental, RunApply, RunEvents} }

// FinishedOutcomes are the outcomes of a run that has ended.
func FinishedOutcomes() []string {
	return []string{RunSucceeded, RunFailed, RunInterrupted, RunRefused}
}

// OperationKinds are the journal kinds that are calls to Sinch.
func OperationKinds() []string {
	return []string{JournalCreate, JournalPatch, JournalMerge, JournalDelete}
}

// FinalStatuses are the journal statuses of an operation that has ended.
func FinalStatuses() []string {
	return []string{JournalDone, JournalFailed, JournalSkipped, JournalRejected, JournalUnknown}
}
