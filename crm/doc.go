// Package crm reads the CRM records from the source relation named in
// crm.source (a table or a view of the contract shape in SPEC §2), through
// crm.filter when several projects share it; checks a relation against
// that contract; reads the change notifications its triggers send; and
// says how far an incremental read may trust it (ReadHorizon). It takes a
// database handle it does not own: the pool state.Open opens.
//
// Records are returned as stored, never validated: deciding what a record
// means for Sinch is the planner's job. Reads page by keyset, one short
// query per batch, so no transaction or cursor stays open while the caller
// talks to Sinch. They go through pgx directly, past database/sql
// (BenchmarkRecords): they are the bulk of every full run, and one
// allocation per row instead of several per column is what keeps them near
// COPY speed.
//
// syncd never writes to a CRM; UpsertRecords exists for tests, the demo and
// seeding.
package crm
