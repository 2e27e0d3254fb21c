// Package crm is syncd's PostgreSQL side: it reads CRM records from the source
// relation named in crm.source (a table or a view of the contract shape in
// SPEC §2), through crm.filter when several projects share it, applies the embedded migrations, and keeps syncd's own state in
// the syncd schema: links to Sinch contacts, runs, the operation journal,
// incremental watermarks, and the per-project advisory lock that lets only one
// runner sync a Sinch project at a time across processes and hosts.
//
// Records are returned as stored, never validated: deciding what a record
// means for Sinch is the reconciler's job. Reads page by keyset, one short
// query per batch, so no transaction or cursor stays open while the caller
// talks to Sinch.
//
// # gorm and hand-written SQL
//
// syncd's own state is read and written through the gorm models of
// models.go. SQL is written by hand only where gorm was measured to cost
// too much, or cannot say what is needed (BenchmarkLinkState,
// BenchmarkJournal and BenchmarkRecords; figures on a loaded 2-core machine):
//
//   - The CRM read (Records, ChangedSince, RecordsByExternalID) goes through
//     pgx directly, past database/sql: it is the bulk of every full run, and
//     one allocation per row instead of several per column is what keeps it
//     near COPY speed.
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
//   - Lock.StartRun and the lock itself run on the lock's own connection,
//     outside the pool gorm draws from, and read pg_locks and
//     pg_stat_activity in the same statement.
//
// SaveLinks stays on gorm (CreateInBatches with ON CONFLICT): it took the
// same time as the unnest statement it replaced for 100k links (about 4 s),
// at 2.4 times the allocations, which a batch of 5,000 bounds.
package crm
