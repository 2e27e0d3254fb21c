package sinch

// RateLimit is the client's current rate limit in requests per second:
// Config.RateLimitRPS, lowered after a 429 and climbing back while calls
// succeed. It is what a metrics gauge shows next to the 429s.
func (c *Client) RateLimit() float64 { return c.gov.rate() }

// SetRateLimit changes Config.RateLimitRPS of a client in use (syncd run
// reloading its configuration): a lower limit applies at once, a higher
// one is reached in the steps by which the rate recovers from a 429.
// rps must be positive.
func (c *Client) SetRateLimit(rps float64) {
	if rps > 0 {
		c.gov.setMax(rps)
	}
}
