package sinch

import (
	"context"
	"testing"
	"time"
)

// stepClock is a manual clock for the governor.
type stepClock struct {
	t     time.Time
	slept []time.Duration
}

func (c *stepClock) clock() *clock {
	return &clock{
		now: func() time.Time { return c.t },
		sleep: func(_ context.Context, d time.Duration) error {
			c.slept = append(c.slept, d)
			c.t = c.t.Add(d)
			return nil
		},
	}
}

func TestGovernorSlowsDownAndRecovers(t *testing.T) {
	sc := &stepClock{t: time.Unix(1_000_000, 0)}
	g := newGovernor(100, sc.clock())

	// A burst of 429s from requests in flight together halves the rate once.
	for range 5 {
		g.throttled(2 * time.Second)
	}
	if r := g.rate(); r != 50 {
		t.Fatalf("rate %v after one burst of 429s, want 50", r)
	}
	// Every caller now waits out the Retry-After.
	if err := g.wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(sc.slept) != 1 || sc.slept[0] != 2*time.Second {
		t.Errorf("slept %v, want the 2s pause", sc.slept)
	}
	// A later burst halves it again, down to a floor.
	for range 20 {
		sc.t = sc.t.Add(lowerCoolDown)
		g.throttled(0)
	}
	if r, floor := g.rate(), 100.0/floorDivisor; r != floor {
		t.Fatalf("rate %v after many 429s, want the floor %v", r, floor)
	}
	// Successes raise it step by step, at most once per raiseEvery.
	g.succeeded()
	if r := g.rate(); r != 100.0/floorDivisor {
		t.Errorf("rate %v: raised at once after a 429", r)
	}
	sc.t = sc.t.Add(raiseEvery)
	g.succeeded()
	g.succeeded()
	if r := g.rate(); r != 100.0/floorDivisor+10 {
		t.Errorf("rate %v after two quick successes, want one step up", r)
	}
	for range raiseSteps + 1 {
		sc.t = sc.t.Add(raiseEvery)
		g.succeeded()
	}
	if r := g.rate(); r != 100 {
		t.Errorf("rate %v after a run of successes, want back to 100", r)
	}
}

func TestGovernorWaitHonoursContext(t *testing.T) {
	g := newGovernor(100, realClock())
	g.throttled(time.Hour)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := g.wait(ctx); err == nil {
		t.Error("waited through a cancelled context")
	}
}
