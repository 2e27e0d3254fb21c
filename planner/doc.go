// Package planner decides what a run does, and nothing else: it reads and
// sends nothing, and takes no context. CRM rows are normalised into the
// contact each asks for (Normalize), held with the stored links and the
// Sinch contacts a run read in an Index, and diffed into a Plan (Diff): the
// creates, patches, merges and deletes that align Sinch with the CRM, each
// with the reason it exists, grouped in the order they must run (Order).
// A full run feeds the index page by page (Index.Page) and sends the
// patches it returns while the list goes on.
package planner
