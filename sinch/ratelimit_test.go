package sinch_test

import (
	"testing"
	"time"

	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/sinch/sinchtest"
)

func TestRateLimitFollowsThe429s(t *testing.T) {
	e := newEnv(t, sinchtest.Options{Faults: sinchtest.Faults{TooManyRequestsRate: 1, RetryAfter: time.Second}},
		func(c *sinch.Config) { c.RateLimitRPS = 400 })
	if r := e.client.RateLimit(); r != 400 {
		t.Fatalf("RateLimit() = %v before any call, want the configured 400", r)
	}
	id := e.emu.Seed(contact("x"))[0].ID
	e.healAfterFirstSleep()
	if _, err := e.client.GetContact(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	// Halved to 200 by the 429, then one step (a tenth of 400) back up by
	// the success that followed.
	if r := e.client.RateLimit(); r != 240 {
		t.Errorf("RateLimit() = %v after a 429 and a success, want 240", r)
	}
}

func TestSetRateLimit(t *testing.T) {
	e := newEnv(t, sinchtest.Options{}, func(c *sinch.Config) { c.RateLimitRPS = 400 })
	for _, rps := range []float64{100, 800, 0} {
		e.client.SetRateLimit(rps)
		want := rps
		if rps == 0 {
			want = 800 // refused: the last one stays
		}
		if r := e.client.RateLimit(); r != want {
			t.Errorf("RateLimit() = %v after SetRateLimit(%v), want %v", r, rps, want)
		}
	}
}
