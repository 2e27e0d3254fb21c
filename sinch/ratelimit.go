package sinch

// RateLimit is the client's current rate limit in requests per second:
// Config.RateLimitRPS, lowered after a 429 and climbing back while calls
// succeed. It is what a metrics gauge shows next to the 429s.
func (c *Client) RateLimit() float64 { return c.gov.rate() }
