package sinch

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// clock is the client's notion of time. Tests swap it for a fake one so that
// backoffs, Retry-After pauses and token lifetimes pass without waiting.
type clock struct {
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

func realClock() *clock { return &clock{now: time.Now, sleep: sleepCtx} }

// sleepCtx waits for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

const (
	// lowerCoolDown keeps one burst of 429s (every in-flight request refused
	// at once) from halving the rate once per request.
	lowerCoolDown = time.Second
	// raiseEvery spaces the steps by which the rate climbs back.
	raiseEvery = time.Second
	// raiseSteps is how many steps it takes to climb from nothing to the
	// configured rate.
	raiseSteps = 10
	// floorDivisor sets the lowest rate a run of 429s can push the client to.
	floorDivisor = 32
)

// governor paces every request of one Client. Sinch's limit is per project,
// so when it answers 429 the whole client slows down, not only the refused
// call: the shared rate is halved, a Retry-After pauses every caller, and the
// rate climbs back in steps while calls succeed.
type governor struct {
	lim   *rate.Limiter
	max   rate.Limit
	floor rate.Limit
	clk   *clock

	mu          sync.Mutex
	pauseUntil  time.Time
	lastLowered time.Time
	lastChange  time.Time
}

func newGovernor(rps float64, clk *clock) *governor {
	// A burst of a tenth of a second keeps the client from front-loading a
	// second's worth of calls into a server-side bucket of the same rate.
	burst := max(1, int(rps/10))
	return &governor{
		lim:   rate.NewLimiter(rate.Limit(rps), burst),
		max:   rate.Limit(rps),
		floor: rate.Limit(rps / floorDivisor),
		clk:   clk,
	}
}

// wait blocks until the caller may send one request.
func (g *governor) wait(ctx context.Context) error {
	g.mu.Lock()
	until := g.pauseUntil
	g.mu.Unlock()
	if d := until.Sub(g.clk.now()); d > 0 {
		if err := g.clk.sleep(ctx, d); err != nil {
			return err
		}
	}
	return g.lim.Wait(ctx)
}

// throttled records a 429: pause everyone for retryAfter and halve the rate.
func (g *governor) throttled(retryAfter time.Duration) (newRate float64, lowered bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.clk.now()
	if until := now.Add(retryAfter); retryAfter > 0 && until.After(g.pauseUntil) {
		g.pauseUntil = until
	}
	// Any 429 restarts the wait before the rate may climb again.
	g.lastChange = now
	cur := g.lim.Limit()
	if now.Sub(g.lastLowered) < lowerCoolDown || cur <= g.floor {
		return float64(cur), false
	}
	g.lastLowered = now
	next := max(cur/2, g.floor)
	g.lim.SetLimit(next)
	return float64(next), true
}

// succeeded lets the rate climb back towards the configured one.
func (g *governor) succeeded() {
	g.mu.Lock()
	defer g.mu.Unlock()
	cur := g.lim.Limit()
	if cur >= g.max {
		return
	}
	now := g.clk.now()
	if now.Sub(g.lastChange) < raiseEvery {
		return
	}
	g.lastChange = now
	g.lim.SetLimit(min(cur+g.max/raiseSteps, g.max))
}

// rate is the current shared rate in requests per second.
func (g *governor) rate() float64 { return float64(g.lim.Limit()) }
