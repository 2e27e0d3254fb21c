// Package state is syncd's own state in its PostgreSQL database, in the
// syncd schema: the links between CRM records and Sinch contacts, the runs,
// the operation journal, the incremental watermarks, the index of the
// identities each record holds and what partial runs deferred, the queue of
// Sinch's contact events (Events), and the migrations that make the schema. It also owns the database itself: Open opens the
// one pool of the process (its sessions named for pg_stat_activity, with
// short TCP keepalives, errors that never show the password), which the CRM
// reader, the leases and the leader elector share; and it keeps the project
// lock (Lock), the lease under which runs start.
//
// # gorm and hand-written SQL
//
// syncd's own state is read and written through the gorm models of
// models.go. SQL is written by hand only where gorm was measured to cost
// too much, or cannot say what is needed (BenchmarkLinkState and
// BenchmarkJournal; figures on a loaded 2-core machine):
//
//   - Links and EachLink build their query with gorm but scan the rows by
//     hand: gorm's Find took 3 times as long to read 100k links (1.45 s
//     against 0.42-0.53 s) with twice the memory and allocations, and a full
//     run reads every link.
//   - JournalAppend inserts multi-row VALUES after drawing the ids from the
//     sequence in one statement, because entries must get ids in plan order
//     and PostgreSQL does not promise the order of INSERT ... RETURNING rows,
//     which is what gorm's CreateInBatches relies on to fill them in.
//   - JournalMarks updates thousands of entries from unnest'ed arrays in one
//     statement: gorm has no UPDATE ... FROM, and one UPDATE per mark (as
//     JournalMark does, through gorm, for the rare single answer) is ~300 a
//     second, against ~30,000 in batches.
//   - Lock.StartRun runs on the lock's own session, outside the pool gorm
//     draws from, and reads pg_locks and pg_stat_activity in the same
//     statement.
//
// SaveLinks stays on gorm (CreateInBatches with ON CONFLICT): it took the
// same time as the unnest statement it replaced for 100k links (about 4 s),
// at 2.4 times the allocations, which a batch of 5,000 bounds.
package state
