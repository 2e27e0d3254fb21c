// Package sync runs reconciles. A run fills a planner.Index with what it
// reads from the CRM source, syncd's own state and Sinch, asks the planner
// for a plan, and applies it through the narrow [SinchAPI] interface,
// journaling every operation in the [Store] before it is sent. It also
// holds the project lock around each run, the daemon's schedules, the
// event runs and explain.
//
// Callers import it as contactsync, since its name shadows the standard
// library's sync.
package sync
