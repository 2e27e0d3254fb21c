package sinch

import (
	"context"
	"math"
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

// rttWeight is the weight of a new sample in the smoothed round trip, as
// TCP smooths its RTT (RFC 6298).
const rttWeight = 1.0 / 8

// governor paces every request of one Client. Sinch's limit is per project,
// so when it answers 429 the whole client slows down, not only the refused
// call: the shared rate is halved, a Retry-After pauses every caller, and the
// rate climbs back in steps while calls succeed.
//
// It also bounds the requests in flight. Little's law says that reaching a
// rate r over a round trip t takes r·t requests in flight; the governor
// allows that many, from the smoothed round trip it measures and the rate
// it runs at now, plus one for the sequential list chain, and never more
// than the configured ceiling. Fewer would waste the rate; more would only
// pile requests onto a server that is slowing down (the limit follows a
// longer round trip with a lag) or that answered 429 (the rate, and so the
// limit, went down).
type governor struct {
	lim   *rate.Limiter
	max   rate.Limit
	floor rate.Limit
	clk   *clock

	mu          sync.Mutex
	pauseUntil  time.Time
	lastLowered time.Time
	lastChange  time.Time

	maxInFlight int
	inFlight    int
	srtt        time.Duration // 0 until the first answer
	freed       chan struct{} // closed, and replaced, when a slot may have opened
}

// initialInFlight is the bound before any round trip was measured: the list
// chain and one more call. The first answer sizes it.
const initialInFlight = 2

func newGovernor(rps float64, maxInFlight int, clk *clock) *governor {
	// A burst of a tenth of a second keeps the client from front-loading a
	// second's worth of calls into a server-side bucket of the same rate.
	burst := max(1, int(rps/10))
	return &governor{
		lim:         rate.NewLimiter(rate.Limit(rps), burst),
		max:         rate.Limit(rps),
		floor:       rate.Limit(rps / floorDivisor),
		clk:         clk,
		maxInFlight: max(1, maxInFlight),
		freed:       make(chan struct{}),
	}
}

// inFlightLimit is rate × round trip + 1, within [1, maxInFlight]. Callers
// hold g.mu.
func (g *governor) inFlightLimit() int {
	if g.srtt <= 0 {
		return min(initialInFlight, g.maxInFlight)
	}
	n := int(math.Ceil(float64(g.lim.Limit())*g.srtt.Seconds())) + 1
	return min(max(n, 1), g.maxInFlight)
}

// acquire takes a slot for one request in flight; release gives it back.
func (g *governor) acquire(ctx context.Context) error {
	for {
		g.mu.Lock()
		if g.inFlight < g.inFlightLimit() {
			g.inFlight++
			g.mu.Unlock()
			return nil
		}
		freed := g.freed
		g.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (g *governor) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inFlight--
	g.wake()
}

// wake lets waiters look at the limit again. Callers hold g.mu.
func (g *governor) wake() {
	close(g.freed)
	g.freed = make(chan struct{})
}

// roundTrip records how long an answered request took.
func (g *governor) roundTrip(d time.Duration) {
	if d <= 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	before := g.inFlightLimit()
	if g.srtt <= 0 {
		g.srtt = d
	} else {
		g.srtt += time.Duration(rttWeight * float64(d-g.srtt))
	}
	if g.inFlightLimit() > before {
		g.wake()
	}
}

// limits reports the in-flight bound and the smoothed round trip it came
// from.
func (g *governor) limits() (int, time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inFlightLimit(), g.srtt
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
	g.wake() // a higher rate may allow more in flight
}

// rate is the current shared rate in requests per second.
func (g *governor) rate() float64 { return float64(g.lim.Limit()) }

// setMax makes rps the configured rate. The current rate follows it at
// once, unless it is down after a 429 and below the new rate: then it
// climbs back in steps, as it would have.
func (g *governor) setMax(rps float64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	cur, old := g.lim.Limit(), g.max
	g.max = rate.Limit(rps)
	g.floor = rate.Limit(rps / floorDivisor)
	g.lim.SetBurst(max(1, int(rps/10)))
	if cur >= old || cur > g.max {
		g.lim.SetLimit(g.max)
	}
	g.wake()
}
