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
	g := newGovernor(100, 8, sc.clock())

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
	g := newGovernor(100, 8, realClock())
	g.throttled(time.Hour)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := g.wait(ctx); err == nil {
		t.Error("waited through a cancelled context")
	}
}

// TestGovernorInFlightFollowsLittlesLaw: the bound is rate × smoothed round
// trip + 1, within the ceiling; it starts at the list chain plus one, grows
// with a longer round trip, and shrinks when a 429 lowers the rate.
func TestGovernorInFlightFollowsLittlesLaw(t *testing.T) {
	sc := &stepClock{t: time.Unix(1_000_000, 0)}
	g := newGovernor(400, 64, sc.clock())
	limit := func() int { n, _ := g.limits(); return n }
	if n := limit(); n != initialInFlight {
		t.Fatalf("limit %d before any answer, want %d", n, initialInFlight)
	}
	g.roundTrip(50 * time.Millisecond) // the first sample is taken as is
	if n := limit(); n != 21 {
		t.Errorf("limit %d at 400/s and 50ms, want 400×0.05+1 = 21", n)
	}
	for range 100 {
		g.roundTrip(100 * time.Millisecond)
	}
	if n, srtt := g.limits(); n != 41 || srtt < 99*time.Millisecond {
		t.Errorf("limit %d (srtt %v) once the round trip settled at 100ms, want 41", n, srtt)
	}
	for range 100 {
		g.roundTrip(time.Second)
	}
	if n := limit(); n != 64 {
		t.Errorf("limit %d at a 1s round trip, want the ceiling 64", n)
	}
	g.throttled(0) // the rate halves, and so does what may be in flight
	if n := limit(); n != 64 {
		t.Errorf("limit %d at 200/s and 1s, want still the ceiling", n)
	}
	for range 100 {
		g.roundTrip(52 * time.Millisecond)
	}
	if n := limit(); n != 12 {
		t.Errorf("limit %d at 200/s and 52ms, want ceil(10.4)+1 = 12", n)
	}
}

// TestGovernorAcquireWaitsForASlot: a caller beyond the bound waits until
// one returns its slot, or until its context ends.
func TestGovernorAcquireWaitsForASlot(t *testing.T) {
	g := newGovernor(400, 1, realClock())
	if err := g.acquire(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { got <- g.acquire(t.Context()) }()
	select {
	case err := <-got:
		t.Fatalf("second acquire returned %v with the only slot taken", err)
	case <-time.After(20 * time.Millisecond):
	}
	g.release()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := g.acquire(ctx); err == nil {
		t.Error("acquired through a cancelled context with the slot taken")
	}
	g.release()
}
