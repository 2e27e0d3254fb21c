package sinch

import (
	"context"
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

var (
	DecodeError     = decodeError
	ParseRetryAfter = parseRetryAfter
)

type MergeRequest = mergeRequest
