// Package crm is syncd's PostgreSQL side: it reads CRM records from the source
// relation named in crm.source (a table or a view of the contract shape in
// SPEC §2), applies the embedded migrations, and keeps syncd's own state in
// the syncd schema: links to Sinch contacts, runs, the operation journal,
// incremental watermarks, and the per-project advisory lock that lets only one
// runner sync a Sinch project at a time across processes and hosts.
//
// Records are returned as stored, never validated: deciding what a record
// means for Sinch is the reconciler's job. Reads page by keyset, one short
// query per batch, so no transaction or cursor stays open while the caller
// talks to Sinch.
package crm
