package sinch

import (
	"context"
	"net/http"
	"time"
)

// SetClock replaces the client's clock. Call it before the client is used.
func SetClock(c *Client, now func() time.Time, sleep func(context.Context, time.Duration) error) {
	c.clk.now, c.clk.sleep = now, sleep
}

// CurrentRate is the client's shared request rate right now.
func CurrentRate(c *Client) float64 { return c.gov.rate() }

// BaseURL is the project base URL the client calls.
func BaseURL(c *Client) string { return c.base }

var ParseRetryAfter = parseRetryAfter

// DecodeError decodes an error answer without redaction.
func DecodeError(op string, status int, h http.Header, body []byte, now time.Time) *APIError {
	return decodeError(op, status, h, body, now, nil)
}

type MergeRequest = mergeRequest
