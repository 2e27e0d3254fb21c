// Package sync reconciles CRM records with Sinch contacts.
//
// A run has three separate steps. Fetching reads both sides into plain
// snapshots. [Diff] is a pure function from those snapshots to a [Plan]: the
// creates, patches, merges and deletes that would align Sinch with the CRM,
// each with the reason it exists. Applying sends a plan to Sinch through the
// narrow [SinchAPI] interface and records every operation in the journal of
// the [Store] before it is sent.
//
// Callers import it as contactsync, since its name shadows the standard
// library's sync.
package sync
