// Package webhook receives Sinch's contact event callbacks: it verifies each
// one as Sinch signs it (HMAC over the raw body, nonce and timestamp),
// parses it, and has an EventStore (state.Events) make the verified events
// durable before it answers, so that an event Sinch was told is received is
// never lost. What the events mean for the contacts is the sync package's
// business; this one only gets them stored, once each.
package webhook
