package sinchtest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxRequestBytes bounds a request body.
const maxRequestBytes = 1 << 20

// route is a request matched to an endpoint.
type route struct {
	op, project, id string
}

// match maps a request onto an endpoint. ok is false for an unknown path;
// a known path with the wrong method gives op OpOther and allowed set.
func match(r *http.Request) (rt route, allowed string, ok bool) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/projects/")
	if !ok {
		return rt, "", false
	}
	rt.project, rest, ok = strings.Cut(rest, "/")
	if !ok || rt.project == "" {
		return rt, "", false
	}
	byMethod := map[string]string{}
	switch {
	case rest == "contacts":
		byMethod = map[string]string{http.MethodGet: OpList, http.MethodPost: OpCreate}
	case strings.HasPrefix(rest, "contacts/"):
		rt.id = strings.TrimPrefix(rest, "contacts/")
		if rt.id == "" || strings.Contains(rt.id, "/") {
			return rt, "", false
		}
		if id, merge := strings.CutSuffix(rt.id, ":merge"); merge {
			rt.id = id
			byMethod = map[string]string{http.MethodPost: OpMerge}
		} else {
			byMethod = map[string]string{http.MethodGet: OpGet, http.MethodPatch: OpUpdate, http.MethodDelete: OpDelete}
		}
	default:
		var webhooks, apps bool
		if byMethod, rt.id, webhooks = webhookRoute(rest); !webhooks {
			if byMethod, rt.id, apps = appRoute(rest); !apps {
				return rt, "", false
			}
		}
	}
	if op, found := byMethod[r.Method]; found {
		rt.op = op
		return rt, "", true
	}
	methods := make([]string, 0, len(byMethod))
	for m := range byMethod {
		methods = append(methods, m)
	}
	rt.op = OpOther
	return rt, strings.Join(methods, ", "), true
}

// ServeHTTP answers like Sinch: auth first, then the project, then the
// injected faults, then the operation.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/oauth2/token" {
		e.count(OpToken)
		e.serveToken(w, r)
		return
	}
	if strings.HasPrefix(r.URL.Path, adminPrefix) {
		e.serveAdmin(w, r)
		return
	}
	rt, allowed, ok := match(r)
	if !ok {
		e.count(OpOther)
		writeError(w, http.StatusNotFound, "NOT_FOUND", "no such endpoint")
		return
	}
	e.count(rt.op)
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBytes))
	if err != nil {
		writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "could not read the request body")
		return
	}
	p := e.plan(&e.apiDice)
	if !pause(r.Context(), p.latency) {
		return // the client went away
	}
	if !e.authenticate(w, r) {
		return
	}
	if rt.project != e.projectID {
		// The key is valid but not this project's: Sinch refuses it.
		writeError(w, http.StatusForbidden, "PERMISSION_DENIED", "the access key does not belong to project "+rt.project)
		return
	}
	if allowed != "" {
		w.Header().Set("Allow", allowed)
		writeError(w, http.StatusMethodNotAllowed, "UNIMPLEMENTED", r.Method+" is not supported here")
		return
	}
	switch {
	case p.limitedFor > 0:
		writeTooMany(w, p.limitedFor, p.retryInfo, "project rate limit exceeded")
		return
	case p.tooMany:
		writeTooMany(w, p.retryAfter, p.retryInfo, "too many requests")
		return
	case p.failStatus != 0:
		name := map[int]string{http.StatusInternalServerError: "INTERNAL", http.StatusServiceUnavailable: "UNAVAILABLE"}[p.failStatus]
		writeError(w, p.failStatus, name, "injected failure")
		return
	case p.dropBefore:
		drop(w)
		return
	}

	before := e.before(rt, body)
	status, answer := e.apply(rt, r, body)
	e.announceAPI(rt, status, answer, before)
	if p.dropAfter {
		drop(w)
		return
	}
	writeJSON(w, r, status, answer, p.slowLoris)
}

// apply runs one operation on the store.
func (e *Emulator) apply(rt route, r *http.Request, body []byte) (int, any) {
	switch rt.op {
	case OpList:
		return e.list(r.URL.Query())
	case OpCreate:
		return e.create(body)
	case OpGet:
		return e.get(rt.id)
	case OpUpdate:
		return e.update(rt.id, r.URL.Query(), body)
	case OpDelete:
		return e.delete(rt.id)
	case OpMerge:
		return e.merge(rt.id, body)
	case OpWebhookCreate, OpWebhookList, OpWebhookGet, OpWebhookUpdate, OpWebhookDelete:
		return e.applyWebhooks(rt, r.URL.Query(), body)
	case OpAppGet, OpAppUpdate:
		return e.applyApps(rt, r.URL.Query(), body)
	}
	return errorBody(http.StatusNotFound, "NOT_FOUND", "no such endpoint")
}

// plan is what the faults decided for one request.
type plan struct {
	latency               time.Duration
	limitedFor            time.Duration // > 0: refused by the server-side rate limit
	tooMany               bool
	retryAfter            time.Duration
	retryInfo             bool
	failStatus            int
	dropBefore, dropAfter bool
	slowLoris             time.Duration
}

// plan draws the faults of d for one request. Every draw is made whatever
// the rates, so one seed gives one sequence of decisions.
func (e *Emulator) plan(d *dice) plan {
	e.mu.Lock()
	defer e.mu.Unlock()
	f := d.faults
	p := plan{latency: f.Latency, slowLoris: f.SlowLoris, retryInfo: f.RetryInfo}
	jitter := d.rng.Float64()
	if f.LatencyJitter > 0 {
		p.latency += time.Duration(jitter * float64(f.LatencyJitter))
	}
	p.tooMany = d.rng.Float64() < f.TooManyRequestsRate
	fail, unavailable := d.rng.Float64() < f.ErrorRate, d.rng.Float64() < 0.5
	switch {
	case fail && unavailable:
		p.failStatus = http.StatusServiceUnavailable
	case fail:
		p.failStatus = http.StatusInternalServerError
	}
	p.dropBefore = d.rng.Float64() < f.DropBeforeRate
	p.dropAfter = d.rng.Float64() < f.DropAfterRate
	switch {
	case f.RetryAfter == 0:
		p.retryAfter = time.Second
	case f.RetryAfter > 0:
		p.retryAfter = f.RetryAfter
	}
	if d.limiter != nil {
		now := time.Now()
		res := d.limiter.ReserveN(now, 1)
		if d := res.DelayFrom(now); d > 0 {
			res.CancelAt(now)
			p.limitedFor = d
		}
	}
	return p
}

// writeTooMany answers 429 RESOURCE_EXHAUSTED asking for a wait of d (none
// when d is 0), in a Retry-After header or, with retryInfo, as the
// google.rpc.RetryInfo detail of Sinch's documented example.
func writeTooMany(w http.ResponseWriter, d time.Duration, retryInfo bool, message string) {
	var details []json.RawMessage
	switch {
	case d <= 0:
	case retryInfo:
		detail, _ := json.Marshal(map[string]string{
			"@type":       "type.googleapis.com/google.rpc.RetryInfo",
			"retry_delay": strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s",
		})
		details = append(details, detail)
	default:
		// Whole seconds, rounded up: the header has no finer unit.
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(d.Seconds())))))
	}
	body := rpcError{Error: rpcStatus{Code: http.StatusTooManyRequests, Message: message, Status: "RESOURCE_EXHAUSTED", Details: details}}
	if body.Error.Details == nil {
		body.Error.Details = []json.RawMessage{}
	}
	writeBody(w, http.StatusTooManyRequests, body)
}

// pause waits d unless the request is cancelled first.
func pause(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// drop closes the connection without an answer, as a crashed server or a
// broken network would.
func drop(w http.ResponseWriter) {
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		conn.Close()
		return
	}
	// HTTP/2 cannot hand over its connection; this aborts the stream.
	panic(http.ErrAbortHandler)
}

// marshal encodes v as Sinch does: compact, with &, < and > as they are
// rather than the \u0026 escapes of json.Marshal, which Sinch does not send
// (a receiver that checks a callback's signature over its parsed body
// serialised again, as the Node SDK's validator allows, depends on it).
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// writeJSON answers v, dribbled over slow when it is positive.
func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any, slow time.Duration) {
	b, err := marshal(v)
	if err != nil {
		status, v = errorBody(http.StatusInternalServerError, "INTERNAL", "encoding the answer failed")
		b, _ = marshal(v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	if slow <= 0 || len(b) == 0 {
		w.Write(b)
		return
	}
	// The status line goes out at once; the body comes in chunks, each
	// after its share of the delay, so the whole answer takes at least slow
	// (timers never fire early) and the client waits before the first byte
	// of the body as well.
	rc := http.NewResponseController(w)
	rc.Flush()
	start := time.Now()
	chunks := min(len(b), 10)
	for i := range chunks {
		due := start.Add(slow * time.Duration(i+1) / time.Duration(chunks))
		if !pause(r.Context(), time.Until(due)) {
			return
		}
		if _, err := w.Write(b[i*len(b)/chunks : (i+1)*len(b)/chunks]); err != nil {
			return
		}
		rc.Flush()
	}
}

// rpcError is Sinch's error body.
type rpcError struct {
	Error rpcStatus `json:"error"`
}

type rpcStatus struct {
	Code    int               `json:"code"`
	Message string            `json:"message"`
	Status  string            `json:"status"`
	Details []json.RawMessage `json:"details"`
}

func errorBody(code int, status, message string) (int, any) {
	return code, rpcError{Error: rpcStatus{Code: code, Message: message, Status: status, Details: []json.RawMessage{}}}
}

func writeError(w http.ResponseWriter, code int, status, message string) {
	code, body := errorBody(code, status, message)
	writeBody(w, code, body)
}

func writeBody(w http.ResponseWriter, code int, body any) {
	b, _ := marshal(body)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(b)
}
