// Package sinch is a client for the contacts endpoints of the Sinch
// Conversation API: list (as an iterator over pages), get, create, update with
// an update_mask, delete and merge. Errors from Sinch come back as *APIError.
//
// The client limits its own request rate (halving it on 429s), keeps as
// many requests in flight as the rate and the measured round trip call for,
// and retries what is safe to retry, waiting as long as Retry-After or a
// google.rpc.RetryInfo detail asks; a create is resent only after a look-up
// by external_id has shown that the lost attempt created nothing. A key
// Sinch refuses (401, 403) is an *AccessError, never retried.
package sinch
