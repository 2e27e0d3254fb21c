package sinch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// maxAnswerBytes bounds what the client reads from one answer.
const maxAnswerBytes = 16 << 20

// answerPool recycles the buffers answers are read into: a full run reads
// a list page every round trip, and growing a fresh buffer for each one
// was most of what a call allocated besides the decoded contacts.
var answerPool = sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, 16<<10)) }}

func putAnswer(buf *bytes.Buffer) {
	if buf.Cap() <= 1<<20 { // an outsized answer is left to the collector
		answerPool.Put(buf)
	}
}

// call is one logical API call, which may take several attempts.
type call struct {
	op, method, path string
	query            url.Values
	body             any // sent as JSON when not nil
	out              any // a 2xx answer is decoded into it when not nil

	// idempotent calls may simply be resent after an ambiguous failure.
	idempotent bool
	// beforeResend runs after an ambiguous failure of a call that is not
	// idempotent, before resending it. It reports whether it settled the
	// call (the first attempt turned out to have worked).
	beforeResend func(ctx context.Context) (settled bool, err error)
	// settle404 handles a 404 that follows an ambiguous attempt, i.e. a
	// resend finding that the lost attempt already did the work.
	settle404 func(ctx context.Context) error
}

// outcome classifies one attempt for the retry loop.
type outcome int

const (
	final     outcome = iota // success, or an error not worth retrying
	refused                  // nothing happened (429, no connection, no token): any call may be resent
	ambiguous                // the request may have been applied (5xx, timeout, dropped connection)
	reauth                   // the bearer token was rejected: fetch a new one and resend once
)

// do runs a call with retries and names a refused key as an *AccessError.
func (c *Client) do(ctx context.Context, cl *call) error {
	err := c.retry(ctx, cl)
	var ae *APIError
	if err == nil || IsAccessDenied(err) || !errors.As(err, &ae) {
		return err
	}
	if ae.HTTPStatus == http.StatusUnauthorized || ae.HTTPStatus == http.StatusForbidden {
		return &AccessError{ProjectID: c.cfg.ProjectID, KeyID: c.cfg.KeyID, Auth: c.cfg.Auth, API: ae, Err: err}
	}
	return err
}

// retry runs a call with retries: exponential backoff with full jitter,
// bounded by MaxAttempts and MaxRetryTime, never shorter than a Retry-After
// or a RetryInfo delay.
func (c *Client) retry(ctx context.Context, cl *call) error {
	var body []byte
	if cl.body != nil {
		var err error
		if body, err = json.Marshal(cl.body); err != nil {
			return fmt.Errorf("sinch %s: encoding request: %w", cl.op, err)
		}
	}
	start := c.clk.now()
	wasAmbiguous, reauthed := false, false
	for attempt := 1; ; attempt++ {
		out, err := c.attempt(ctx, cl, body)
		switch out {
		case final:
			if err != nil && wasAmbiguous && cl.settle404 != nil && IsNotFound(err) {
				return cl.settle404(ctx)
			}
			if err != nil && wasAmbiguous && !cl.idempotent {
				// An earlier attempt may have been applied: a refusal of the
				// resend says nothing about it.
				return fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
			}
			return err
		case reauth:
			if reauthed {
				return err
			}
			// One fresh token, one resend, not counted as an attempt: what
			// every official SDK does with an expired token.
			reauthed = true
			attempt--
			continue
		case ambiguous:
			if !cl.idempotent && cl.beforeResend == nil {
				return fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
			}
			wasAmbiguous = true
		}

		delay, ok := c.backoff(attempt, start, err)
		if !ok {
			err = fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
			if wasAmbiguous && !cl.idempotent {
				return fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
			}
			return err
		}
		c.log.Debug("sinch: retrying", zap.String("op", cl.op), zap.Int("attempt", attempt), zap.Duration("delay", delay), zap.Error(err))
		if serr := c.clk.sleep(ctx, delay); serr != nil {
			return fmt.Errorf("sinch %s: %w (last error: %w)", cl.op, serr, err)
		}
		if out == ambiguous && cl.beforeResend != nil {
			settled, lerr := cl.beforeResend(ctx)
			if lerr != nil {
				return fmt.Errorf("%w: %w (checking after: %w)", ErrOutcomeUnknown, lerr, err)
			}
			if settled {
				return nil
			}
		}
	}
}

// backoff picks the wait before the next attempt, or reports that the call
// has used up its attempts or its time.
func (c *Client) backoff(attempt int, start time.Time, err error) (time.Duration, bool) {
	if attempt >= c.cfg.MaxAttempts {
		return 0, false
	}
	ceiling := c.cfg.MinBackoff
	for i := 1; i < attempt && ceiling < c.cfg.MaxBackoff; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, c.cfg.MaxBackoff)
	// Full jitter: anywhere between nothing and the ceiling, which spreads
	// the retries of many callers refused at the same moment.
	delay := rand.N(ceiling + 1)
	var ae *APIError
	if errors.As(err, &ae) && ae.RetryAfter > delay {
		delay = ae.RetryAfter
	}
	if c.clk.now().Sub(start)+delay > c.cfg.MaxRetryTime {
		return 0, false
	}
	return delay, true
}

// attempt sends one request and decodes a 2xx answer into cl.out.
func (c *Client) attempt(ctx context.Context, cl *call, body []byte) (outcome, error) {
	if err := c.gov.acquire(ctx); err != nil {
		return final, fmt.Errorf("sinch %s: %w", cl.op, err)
	}
	defer c.gov.release()
	if err := c.gov.wait(ctx); err != nil {
		return final, fmt.Errorf("sinch %s: %w", cl.op, err)
	}

	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	u := c.base + cl.path
	if len(cl.query) > 0 {
		u += "?" + cl.query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(actx, cl.method, u, rd)
	if err != nil {
		return final, fmt.Errorf("sinch %s: %w", cl.op, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	cred, err := c.auth.authorize(actx, req)
	if err != nil {
		return c.classifyTokenError(ctx, err)
	}

	began := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		c.observe(cl.op, 0, time.Since(began))
		return c.classifyTransport(ctx, cl.op, err)
	}
	buf := answerPool.Get().(*bytes.Buffer)
	defer putAnswer(buf)
	buf.Reset()
	_, err = buf.ReadFrom(io.LimitReader(resp.Body, maxAnswerBytes))
	answer := buf.Bytes() // valid until buf goes back to the pool: decoding copies what it keeps
	resp.Body.Close()
	took := time.Since(began)
	c.observe(cl.op, resp.StatusCode, took)
	if err != nil {
		// The status came back but the body did not: as open as a timeout.
		return c.classifyTransport(ctx, cl.op, err)
	}
	c.gov.roundTrip(took)

	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		c.gov.succeeded()
		if cl.out != nil {
			if err := json.Unmarshal(answer, cl.out); err != nil {
				return final, fmt.Errorf("sinch %s: decoding answer: %w", cl.op, err)
			}
		}
		return final, nil
	}
	ae := decodeError(cl.op, resp.StatusCode, resp.Header, answer, c.clk.now(), c.redact)
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		if rps, lowered := c.gov.throttled(ae.RetryAfter); lowered {
			c.log.Warn("sinch: rate limited; slowing the client down", zap.String("op", cl.op), zap.Float64("rps", rps), zap.Duration("retry_after", ae.RetryAfter))
		}
		return refused, ae
	case resp.StatusCode == http.StatusUnauthorized && c.auth.invalidate(cred):
		return reauth, ae
	case resp.StatusCode >= 500:
		return ambiguous, ae
	}
	return final, ae
}

// classifyTransport sorts out an error that left no HTTP answer.
func (c *Client) classifyTransport(ctx context.Context, op string, err error) (outcome, error) {
	if ue, ok := err.(*url.Error); ok {
		// The query may carry an external id or a phone number: keep it out
		// of error strings and so out of logs.
		copied := *ue
		copied.URL = stripQuery(ue.URL)
		err = &copied
	}
	err = fmt.Errorf("sinch %s: %w", op, err)
	if ctx.Err() != nil {
		return final, err // the caller gave up, not the server
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return refused, err // never reached the server
	}
	return ambiguous, err
}

// classifyTokenError sorts out a failure to get a bearer token. The contacts
// request was not sent, so any call may be resent when the token endpoint
// hiccups; a rejected key is final.
func (c *Client) classifyTokenError(ctx context.Context, err error) (outcome, error) {
	var ae *APIError
	switch {
	case ctx.Err() != nil:
		return final, err
	case errors.As(err, &ae):
		if ae.HTTPStatus == http.StatusTooManyRequests || ae.HTTPStatus >= 500 {
			return refused, ae
		}
		return final, ae
	}
	return refused, err
}

func stripQuery(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.RawQuery = ""
	return u.String()
}

// redact removes the key secret, the Basic credentials and the bearer token
// from text that came from the server.
func (c *Client) redact(s string) string {
	s = c.redactor.Replace(s)
	if tok := c.auth.current(); tok != "" {
		s = strings.ReplaceAll(s, tok, redacted)
	}
	return s
}

func (c *Client) observe(op string, status int, d time.Duration) {
	if c.cfg.Observer != nil {
		c.cfg.Observer.ObserveCall(op, status, d)
	}
}
