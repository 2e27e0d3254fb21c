// Package sinch is a client for the contacts endpoints of the Sinch
// Conversation API: list (as an iterator over pages), get, create, update with
// an update_mask, delete and merge. Errors from Sinch come back as *APIError.
//
// The client limits its own request rate, bounds its concurrency and retries
// what is safe to retry; a create is resent only after a look-up by
// external_id has shown that the lost attempt created nothing.
package sinch
