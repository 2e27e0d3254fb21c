package sinch

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// APIError is an error answer from Sinch, decoded from its Google RPC status
// body ({"error": {"code", "message", "status", "details"}}). When the body is
// not in that shape (a proxy's HTML page, an empty 502), Code and Status are
// derived from the HTTP status and Message holds the start of the body.
type APIError struct {
	HTTPStatus int               // status line of the answer
	Code       int               // error.code, normally equal to HTTPStatus
	Message    string            // error.message
	Status     string            // error.status, e.g. NOT_FOUND, INVALID_ARGUMENT
	Details    []json.RawMessage // error.details, undecoded
	// RetryAfter is the wait the server asked for: the longer of a
	// Retry-After header and a google.rpc.RetryInfo detail's retry_delay,
	// 0 when neither came.
	RetryAfter time.Duration
	Operation  string // the client operation, e.g. "get"
}

// Error never includes credentials: the client redacts the secret and tokens
// from Message before the error leaves it.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("sinch")
	if e.Operation != "" {
		b.WriteString(" " + e.Operation)
	}
	fmt.Fprintf(&b, ": HTTP %d", e.HTTPStatus)
	if e.Status != "" {
		b.WriteString(" " + e.Status)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// Every decision about an error is made on HTTPStatus alone: the status
// strings Sinch sends vary (the canonical gRPC names, and INVALID_REQUEST,
// UNAUTHORIZED, INTERNAL_ERROR in its own spec's examples), so Status is
// kept for people to read, never compared.

// IsNotFound reports whether err is, or wraps, a Sinch 404.
func IsNotFound(err error) bool { return hasStatus(err, http.StatusNotFound) }

// IsRateLimited reports whether err is, or wraps, a Sinch 429.
func IsRateLimited(err error) bool { return hasStatus(err, http.StatusTooManyRequests) }

func hasStatus(err error, status int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.HTTPStatus == status
}

// AccessError is a refusal no retry can cure, named in one line with the
// configuration keys to check (syncd's names for the Config fields): a 401
// that a fresh token did not cure (or any 401 with Basic auth, or from the
// token endpoint), and a 403, which Sinch sends for a key of another project
// or when billing refuses the call.
type AccessError struct {
	ProjectID, KeyID, Auth string
	API                    *APIError // the refusal
	Err                    error     // the whole error, API somewhere in its chain
}

func (e *AccessError) Error() string {
	var what string
	if e.API.HTTPStatus == http.StatusForbidden {
		what = fmt.Sprintf("access key %q may not use project %q (check sinch.project_id and sinch.key_id; billing may also have refused the call)", e.KeyID, e.ProjectID)
	} else {
		what = fmt.Sprintf("the credentials were refused for access key %q (check sinch.key_id, sinch.key_secret and sinch.auth, now %s)", e.KeyID, e.Auth)
	}
	// One line whatever the server put in its message.
	return strings.Join(strings.Fields("sinch: "+what+": "+strings.TrimPrefix(e.Err.Error(), "sinch ")), " ")
}

func (e *AccessError) Unwrap() error { return e.Err }

// IsAccessDenied reports whether err is, or wraps, an *AccessError.
func IsAccessDenied(err error) bool {
	var ae *AccessError
	return errors.As(err, &ae)
}

// ErrOutcomeUnknown marks a failure after which Sinch may or may not have
// applied the request: a create whose answer was lost and that could not be
// safely resent. The caller must look the contact up before trying again.
var ErrOutcomeUnknown = errors.New("sinch: outcome unknown")

// maxMessageBytes bounds the part of a non-JSON body kept as the message, so
// an HTML error page does not flood logs.
const maxMessageBytes = 256

// maxRetryAfter caps a Retry-After header at a day, so that a silly value
// neither overflows a Duration nor parks the client for years.
const maxRetryAfter = 24 * time.Hour

// rpcStatus is the Google RPC status object inside {"error": ...}.
type rpcStatus struct {
	Code    int               `json:"code"`
	Message string            `json:"message"`
	Status  string            `json:"status"`
	Details []json.RawMessage `json:"details"`
}

// decodeError turns a non-2xx answer into an *APIError. It accepts the
// wrapped shape Sinch sends, the unwrapped shape some spec examples show, and
// anything else as plain text. redact (nil: none) scrubs credentials from
// the whole body before anything is cut from it, and from the decoded
// message, where JSON escapes may have hidden them from the first pass: a
// cut first could leave the start of a secret behind.
func decodeError(op string, httpStatus int, header http.Header, body []byte, now time.Time, redact func(string) string) *APIError {
	if redact == nil {
		redact = func(s string) string { return s }
	}
	body = []byte(redact(string(body)))
	e := &APIError{HTTPStatus: httpStatus, Operation: op, RetryAfter: parseRetryAfter(header.Get("Retry-After"), now)}
	var wrapped struct {
		Error *rpcStatus `json:"error"`
	}
	var st *rpcStatus
	if json.Unmarshal(body, &wrapped) == nil && wrapped.Error != nil {
		st = wrapped.Error
	} else {
		var bare rpcStatus
		if json.Unmarshal(body, &bare) == nil && (bare.Status != "" || bare.Message != "") {
			st = &bare
		}
	}
	if st != nil {
		e.Code, e.Message, e.Status, e.Details = st.Code, redact(st.Message), st.Status, st.Details
		e.RetryAfter = max(e.RetryAfter, retryDelay(st.Details))
	} else {
		e.Message = snippet(body)
	}
	if e.Code == 0 {
		e.Code = httpStatus
	}
	if e.Status == "" {
		e.Status = rpcStatusName(httpStatus)
	}
	if e.Message == "" {
		e.Message = http.StatusText(httpStatus)
	}
	return e
}

// snippet returns the start of a body as one clean line of valid UTF-8.
// Credentials must be scrubbed from body before: the cut may split one.
func snippet(body []byte) string {
	if len(body) > maxMessageBytes {
		body = body[:maxMessageBytes]
	}
	// ToValidUTF8 also drops a rune the cut above split in two.
	return strings.Join(strings.Fields(strings.ToValidUTF8(string(body), "")), " ")
}

// rpcStatusName maps an HTTP status to the canonical Google RPC status name,
// for answers whose body did not carry one.
func rpcStatusName(httpStatus int) string {
	switch httpStatus {
	case http.StatusBadRequest:
		return "INVALID_ARGUMENT"
	case http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case http.StatusForbidden:
		return "PERMISSION_DENIED"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusConflict:
		return "ABORTED"
	case http.StatusTooManyRequests:
		return "RESOURCE_EXHAUSTED"
	case http.StatusNotImplemented:
		return "UNIMPLEMENTED"
	case http.StatusServiceUnavailable:
		return "UNAVAILABLE"
	case http.StatusGatewayTimeout:
		return "DEADLINE_EXCEEDED"
	}
	if httpStatus >= 500 {
		return "INTERNAL"
	}
	return "UNKNOWN"
}

// retryInfoType is the @type of the detail that carries a retry delay.
const retryInfoType = "type.googleapis.com/google.rpc.RetryInfo"

// retryDelay returns the longest retry_delay of the google.rpc.RetryInfo
// entries of details, 0 when there is none. The delay is a protobuf
// Duration: in JSON a string such as "2s" or "0.5s"; the object form
// {"seconds", "nanos"} and the proto3 JSON name retryDelay are accepted too.
func retryDelay(details []json.RawMessage) time.Duration {
	var longest time.Duration
	for _, raw := range details {
		var d struct {
			Type       string          `json:"@type"`
			RetryDelay json.RawMessage `json:"retry_delay"`
			Camel      json.RawMessage `json:"retryDelay"`
		}
		if json.Unmarshal(raw, &d) != nil || (d.Type != retryInfoType && !strings.HasSuffix(d.Type, "/google.rpc.RetryInfo")) {
			continue
		}
		v := d.RetryDelay
		if v == nil {
			v = d.Camel
		}
		longest = max(longest, parseDuration(v))
	}
	return longest
}

// parseDuration reads a protobuf Duration in its JSON forms; nonsense and
// negative values give 0, and the result is capped like Retry-After.
func parseDuration(raw json.RawMessage) time.Duration {
	var secs float64
	var text string
	var obj struct {
		Seconds json.Number `json:"seconds"`
		Nanos   int64       `json:"nanos"`
	}
	switch {
	case json.Unmarshal(raw, &text) == nil:
		n, ok := strings.CutSuffix(strings.TrimSpace(text), "s")
		f, err := strconv.ParseFloat(n, 64)
		if !ok || err != nil {
			return 0
		}
		secs = f
	case json.Unmarshal(raw, &obj) == nil:
		f, err := obj.Seconds.Float64()
		if err != nil && obj.Seconds != "" {
			return 0
		}
		secs = f + float64(obj.Nanos)/1e9
	default:
		return 0
	}
	if !(secs > 0) { // also NaN
		return 0
	}
	return min(time.Duration(min(secs, maxRetryAfter.Seconds())*float64(time.Second)), maxRetryAfter)
}

// parseRetryAfter reads a Retry-After header given either as delay seconds or
// as an HTTP date. Nonsense and past dates give 0, meaning "back off on your
// own".
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Duration(min(max(secs, 0), int64(maxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), maxRetryAfter)
	}
	return 0
}
