// Package webhook receives Sinch's contact event callbacks: it verifies each
// one as Sinch signs it (HMAC over the raw body, nonce and timestamp), and
// stores the verified events in PostgreSQL before it answers, so that an
// event Sinch was told is received is never lost. What the events mean for
// the contacts is the sync package's business; this one only makes them
// durable, once each.
package webhook
