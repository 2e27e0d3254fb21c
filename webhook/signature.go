package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"time"
)

// The headers Sinch signs a callback with (sinch/webhooks.md).
const (
	HeaderTimestamp = "X-Sinch-Webhook-Signature-Timestamp"
	HeaderNonce     = "X-Sinch-Webhook-Signature-Nonce"
	HeaderAlgorithm = "X-Sinch-Webhook-Signature-Algorithm"
	HeaderSignature = "X-Sinch-Webhook-Signature"
)

// The signature algorithms Sinch's SDKs accept.
const (
	AlgorithmSHA256 = "HmacSHA256"
	AlgorithmSHA512 = "HmacSHA512"
)

// MaxSkew is how far a callback's signature timestamp may be from now.
// Sinch's documentation asks for "a few minutes"; beyond this a captured
// callback could be replayed once its nonce has been forgotten.
const MaxSkew = 5 * time.Minute

// maxNonce bounds the nonce a callback may carry: Sinch's are ULIDs (26
// characters), and the nonce is stored.
const maxNonce = 128

// Refusal is why a callback is not accepted, with the HTTP status that says
// so to the sender. Match it with errors.As; Reason is a metrics label.
type Refusal struct {
	Reason string
	Status int
	msg    string
}

func (r *Refusal) Error() string { return "webhook: " + r.msg }

// Refusal reasons.
const (
	ReasonMissingSignature = "missing_signature"
	ReasonBadSignature     = "bad_signature"
	ReasonStale            = "stale"
	ReasonReplay           = "replay"
	ReasonTooLarge         = "too_large"
	ReasonBadPayload       = "bad_payload"
	ReasonOtherProject     = "other_project"
	ReasonUnavailable      = "unavailable"
	ReasonBusy             = "busy"
	ReasonSlowBody         = "slow_body"
)

// Reasons lists every refusal reason, for metrics that create their series
// up front.
func Reasons() []string {
	return []string{ReasonMissingSignature, ReasonBadSignature, ReasonStale, ReasonReplay,
		ReasonTooLarge, ReasonBadPayload, ReasonOtherProject, ReasonUnavailable, ReasonBusy, ReasonSlowBody}
}

var (
	ErrMissingSignature = &Refusal{ReasonMissingSignature, http.StatusUnauthorized, "the callback is not signed"}
	ErrBadSignature     = &Refusal{ReasonBadSignature, http.StatusUnauthorized, "the callback's signature does not verify"}
	ErrStale            = &Refusal{ReasonStale, http.StatusUnauthorized, "the callback's signature timestamp is too far from now"}
	ErrReplay           = &Refusal{ReasonReplay, http.StatusUnauthorized, "the callback's nonce was seen before"}
	ErrTooLarge         = &Refusal{ReasonTooLarge, http.StatusRequestEntityTooLarge, "the callback's body is over 1 MiB"}
	// ErrBusy is a callback that came while MaxInFlight others were being
	// read or stored: Sinch sends it again.
	ErrBusy = &Refusal{ReasonBusy, http.StatusServiceUnavailable, "too many callbacks at once"}
	// ErrSlowBody is a callback whose body did not arrive within the body
	// deadline.
	ErrSlowBody = &Refusal{ReasonSlowBody, http.StatusRequestTimeout, "the callback's body came too slowly"}
)

// Signature is what a callback's signature headers say.
type Signature struct {
	Timestamp int64 // Unix seconds
	Nonce     string
	Algorithm string
	MAC       []byte
}

// ParseSignature reads the signature headers. A callback without them (or
// with an empty one) is ErrMissingSignature; one whose headers cannot be
// read is ErrBadSignature. A missing algorithm header means HmacSHA256, the
// only one Sinch signs with today.
func ParseSignature(h http.Header) (Signature, error) {
	ts, nonce, sig := h.Get(HeaderTimestamp), h.Get(HeaderNonce), h.Get(HeaderSignature)
	if ts == "" || nonce == "" || sig == "" {
		return Signature{}, ErrMissingSignature
	}
	s := Signature{Nonce: nonce, Algorithm: h.Get(HeaderAlgorithm)}
	if s.Algorithm == "" {
		s.Algorithm = AlgorithmSHA256
	}
	if newHash(s.Algorithm) == nil {
		return Signature{}, fmt.Errorf("%w: algorithm %.40q", ErrBadSignature, s.Algorithm)
	}
	var err error
	if s.Timestamp, err = strconv.ParseInt(ts, 10, 64); err != nil || s.Timestamp < 0 {
		return Signature{}, fmt.Errorf("%w: timestamp %.40q", ErrBadSignature, ts)
	}
	if len(nonce) > maxNonce || !printable(nonce) {
		return Signature{}, fmt.Errorf("%w: malformed nonce", ErrBadSignature)
	}
	if s.MAC, err = base64.StdEncoding.Strict().DecodeString(sig); err != nil || len(s.MAC) == 0 {
		return Signature{}, fmt.Errorf("%w: signature is not base64", ErrBadSignature)
	}
	return s, nil
}

func printable(s string) bool {
	for i := range len(s) {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func newHash(algorithm string) func() hash.Hash {
	switch algorithm {
	case AlgorithmSHA256:
		return sha256.New
	case AlgorithmSHA512:
		return sha512.New
	}
	return nil
}

// mac is HMAC(secret, body + "." + nonce + "." + timestamp).
func mac(secret []byte, algorithm string, body []byte, nonce string, timestamp int64) []byte {
	m := hmac.New(newHash(algorithm), secret)
	m.Write(body)
	m.Write([]byte{'.'})
	m.Write([]byte(nonce))
	m.Write([]byte{'.'})
	m.Write(strconv.AppendInt(nil, timestamp, 10))
	return m.Sum(nil)
}

// Verify checks the signature over the raw body, in constant time, and then
// that it was made within MaxSkew of now. The nonce is checked against the
// ones seen before by the store, which remembers it.
func (s Signature) Verify(secret, body []byte, now time.Time) error {
	if len(secret) == 0 {
		return errors.New("webhook: no secret configured")
	}
	want := mac(secret, s.Algorithm, body, s.Nonce, s.Timestamp)
	if !hmac.Equal(want, s.MAC) {
		return ErrBadSignature
	}
	return s.CheckTime(now)
}

// CheckTime is ErrStale when the signature's timestamp is more than
// MaxSkew from now. It needs no body, so a receiver can refuse a stale
// callback before reading it; the timestamp counts only once Verify has
// checked the signature that covers it.
func (s Signature) CheckTime(now time.Time) error {
	if d := now.Sub(time.Unix(s.Timestamp, 0)); d > MaxSkew || d < -MaxSkew {
		return fmt.Errorf("%w: %s off", ErrStale, d.Round(time.Second))
	}
	return nil
}

// Sign sets the signature headers of a callback as Sinch does, with
// HmacSHA256: for the emulator and for tests.
func Sign(h http.Header, secret, body []byte, nonce string, t time.Time) {
	SignWith(h, AlgorithmSHA256, secret, body, nonce, t)
}

// SignWith is Sign with the given algorithm.
func SignWith(h http.Header, algorithm string, secret, body []byte, nonce string, t time.Time) {
	ts := t.Unix()
	h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	h.Set(HeaderNonce, nonce)
	h.Set(HeaderAlgorithm, algorithm)
	h.Set(HeaderSignature, base64.StdEncoding.EncodeToString(mac(secret, algorithm, body, nonce, ts)))
}
