// Package sync runs reconciles: it reads a scope of both sides into a
// planner.Index, asks the planner for a plan, and applies it.
//
// A record's path from the CRM to Sinch runs through four files:
//
//   - crm/source.go reads it from the CRM source (a full run reads the
//     whole source as one moment; partial runs read the rows they need);
//   - fetch.go (a full run's scope: every row, every contact, listed page
//     by page) or partial.go (a partial run's scope: what changed, grown
//     over the identity graph to everything connected to it) fills the
//     index with it, its link and its contacts;
//   - planner/diff.go decides what it needs, and planner/order.go in what
//     order (scope.go's plan loop owns the reads a plan asks for);
//   - apply.go journals each operation, checks what cannot be undone
//     against facts read just before (fresh.go, full runs), and sends it
//     through the narrow [SinchAPI] to sinch/client.go.
//
// reconciler.go records each run, holding the project lock around a
// partial one; fullrun.go holds the full-run lock around a full run, which
// takes the project lock only while it writes a batch, each batch less
// what changed under the run since it began;
// daemon.go schedules runs; events.go turns stored Sinch events into
// partial runs, but for the echoes of syncd's own writes, which the journal
// proves and which cost nothing, and retries alone and parks those that
// fail; explain.go answers for one record.
//
// What a run needs of PostgreSQL comes through small interfaces defined
// where they are used: [CRM] (crm.Reader), and [Links], [Identities],
// [Deferrals], [Journal], [Runs], [Watermarks], [Locks], [EventQueue] and
// [History] (state.Store and state.Events).
//
// Callers import it as contactsync, since its name shadows the standard
// library's sync.
package sync
