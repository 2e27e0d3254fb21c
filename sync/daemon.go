package sync

import (
	"context"
	"fmt"
	stdsync "sync"
	"time"

	"github.com/robfig/cron/v3"
	"go.uber.org/zap"

	"github.com/syncd/syncd/state"
)

// scheduleParser reads five-field cron expressions, an optional leading
// seconds field, and descriptors such as @every 1m and @daily.
var scheduleParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule checks a schedule expression of the configuration.
func ParseSchedule(spec string) (cron.Schedule, error) {
	return scheduleParser.Parse(spec)
}

// Daemon runs reconciles on two schedules, incremental and full, an
// incremental run soon after the CRM reports a change and an event run soon
// after Sinch does. It has two lanes. Partial runs (incremental, events) go
// one at a time in one: a tick or a notification that finds one going asks
// for one more of its kind after it. Full runs go in the other, beside
// them, since a full run holds the project lock only while it writes (see
// Reconciler.Run): a full tick during a full run is skipped. Every run
// waits for a lock held elsewhere rather than be dropped.
type Daemon struct {
	Reconciler  *Reconciler
	Logger      *zap.Logger
	Incremental string // cron expression
	Full        string // cron expression
	// Debounce is the quiet time after a change notification before a run
	// starts, so that a burst of writes makes one run; MaxDelay bounds how
	// long a steady stream of notifications can hold a run back.
	Debounce time.Duration
	MaxDelay time.Duration
	// OnSkip is told about a tick that did not run: reason "running" or
	// "locked" (another syncd holds the project lock).
	OnSkip func(kind state.RunKind, reason string)
	// OnRun is told about every finished run.
	OnRun func(rep Report, err error)
	// RunAtStart makes an incremental run as soon as Run starts (and, with
	// Events, an event run after it).
	RunAtStart bool
	// Events, when set, tells of new Sinch contact events in the queue:
	// each burst makes an event run (see state.RunEvents).
	Events <-chan struct{}
	// Ticks, when set, stands in for the two schedules: each kind received
	// (state.RunIncremental or state.RunFull) is a tick of that schedule. Tests fire
	// ticks with it when they choose, without a clock.
	Ticks <-chan state.RunKind
	// Heartbeat, when set, is called every HeartbeatEvery (default 10s) by
	// the scheduler itself, once it has taken the daemon's lock: a
	// watchdog's sign that the scheduler is alive and not wedged.
	Heartbeat      func()
	HeartbeatEvery time.Duration

	cron        *cron.Cron
	entries     [2]cron.EntryID // incremental, full
	jobs        [2]cron.Job     // what they run
	wg          stdsync.WaitGroup
	mu          stdsync.Mutex
	fullBusy    bool          // a full run is going
	busy        bool          // a partial run is going
	current     state.RunKind // kind of the partial run going, while busy
	again       bool          // an incremental run is due after it
	againEvents bool          // an event run is due after it
}

// Run schedules runs until ctx ends, then waits for the run in flight to
// stop (it stops starting operations at once; calls already sent finish).
// changes delivers CRM change notifications; nil disables them.
func (d *Daemon) Run(ctx context.Context, changes <-chan struct{}) error {
	d.mu.Lock()
	incSpec, fullSpec := d.Incremental, d.Full
	d.mu.Unlock()
	inc, err := ParseSchedule(incSpec)
	if err != nil {
		return fmt.Errorf("schedule.incremental: %w", err)
	}
	full, err := ParseSchedule(fullSpec)
	if err != nil {
		return fmt.Errorf("schedule.full: %w", err)
	}
	heartbeatEvery := d.HeartbeatEvery
	if heartbeatEvery <= 0 {
		heartbeatEvery = 10 * time.Second
	}
	beat := func() {
		d.mu.Lock()
		//nolint:staticcheck // taking the lock is the point: a wedged daemon never gets past it
		d.mu.Unlock()
		if d.Heartbeat != nil {
			d.Heartbeat()
		}
	}
	if d.Ticks == nil {
		c := cron.New(cron.WithParser(scheduleParser), cron.WithLogger(cron.DiscardLogger))
		d.mu.Lock()
		// As they are now: SetSchedules may have changed them since.
		inc, _ = ParseSchedule(d.Incremental)
		full, _ = ParseSchedule(d.Full)
		d.cron = c
		d.jobs = [2]cron.Job{
			cron.FuncJob(func() { d.start(ctx, state.RunIncremental, false) }),
			cron.FuncJob(func() { d.start(ctx, state.RunFull, false) }),
		}
		d.entries = [2]cron.EntryID{c.Schedule(inc, d.jobs[0]), c.Schedule(full, d.jobs[1])}
		d.mu.Unlock()
		if d.Heartbeat != nil {
			c.Schedule(cron.Every(heartbeatEvery), cron.FuncJob(beat))
		}
		c.Start()
	} else {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.tickOn(ctx, d.Ticks)
		}()
		if d.Heartbeat != nil {
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				t := time.NewTicker(heartbeatEvery)
				defer t.Stop()
				for {
					select {
					case <-ctx.Done():
						return
					case <-t.C:
						beat()
					}
				}
			}()
		}
	}

	if d.RunAtStart {
		// Events stored while syncd was down, or left by a crash between
		// receipt and processing, are processed after the first run.
		d.mu.Lock()
		d.againEvents = d.Events != nil
		d.mu.Unlock()
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.start(ctx, state.RunIncremental, true)
		}()
	}
	if changes != nil {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.watch(ctx, changes, state.RunIncremental)
		}()
	}
	if d.Events != nil {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.watch(ctx, d.Events, state.RunEvents)
		}()
	}
	<-ctx.Done()
	if d.cron != nil {
		<-d.cron.Stop().Done()
	}
	d.wg.Wait()
	return nil
}

// tickOn runs each tick received as cron runs a job: in a goroutine of its
// own, so that a long run does not hold back the ticks after it.
func (d *Daemon) tickOn(ctx context.Context, ticks <-chan state.RunKind) {
	for {
		select {
		case <-ctx.Done():
			return
		case kind := <-ticks:
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				d.start(ctx, kind, false)
			}()
		}
	}
}

// NextRuns returns when each schedule fires next; zero before Run.
func (d *Daemon) NextRuns() (incremental, full time.Time) {
	d.mu.Lock()
	c, ids := d.cron, d.entries
	d.mu.Unlock()
	if c == nil {
		return time.Time{}, time.Time{}
	}
	// By id: Entries() is sorted by the next firing, whichever it is.
	return c.Entry(ids[0]).Next, c.Entry(ids[1]).Next
}

// SetSchedules replaces the two schedules of a running daemon (syncd run
// reloading its configuration); a run going on is not touched. Before Run,
// or with Ticks, it only records them.
func (d *Daemon) SetSchedules(incremental, full string) error {
	inc, err := ParseSchedule(incremental)
	if err != nil {
		return fmt.Errorf("schedule.incremental: %w", err)
	}
	fl, err := ParseSchedule(full)
	if err != nil {
		return fmt.Errorf("schedule.full: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.Incremental, d.Full = incremental, full
	if d.cron == nil {
		return nil
	}
	for i, s := range []cron.Schedule{inc, fl} {
		d.cron.Remove(d.entries[i])
		d.entries[i] = d.cron.Schedule(s, d.jobs[i])
	}
	return nil
}

// watch turns bursts of notifications into runs of kind. Events wait
// less than CRM changes: an event run reads only what its events name, so
// a steady stream of them is cheap to follow closely, and a Sinch-side edit
// is wrong for every message sent until it is put back.
func (d *Daemon) watch(ctx context.Context, changes <-chan struct{}, kind state.RunKind) {
	debounce, maxDelay := d.Debounce, d.MaxDelay
	if debounce <= 0 {
		debounce = 200 * time.Millisecond
	}
	if maxDelay <= 0 {
		maxDelay = time.Second
	}
	if kind == state.RunEvents {
		debounce, maxDelay = debounce/4, maxDelay/4
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-changes:
		}
		deadline := time.NewTimer(maxDelay)
		quiet := time.NewTimer(debounce)
	burst:
		for {
			select {
			case <-ctx.Done():
				deadline.Stop()
				quiet.Stop()
				return
			case <-changes:
				quiet.Reset(debounce)
			case <-quiet.C:
				break burst
			case <-deadline.C:
				break burst
			}
		}
		deadline.Stop()
		quiet.Stop()
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.start(ctx, kind, true)
		}()
	}
}

// Busy reports whether a run is going.
func (d *Daemon) Busy() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.busy || d.fullBusy
}

// start runs kind unless a run of its lane is going. A notification
// (coalesce) that finds a partial run going asks for one more run of its
// kind after it instead.
func (d *Daemon) start(ctx context.Context, kind state.RunKind, coalesce bool) {
	if ctx.Err() != nil {
		return
	}
	if kind == state.RunFull {
		d.full(ctx)
		return
	}
	d.mu.Lock()
	if d.busy {
		switch {
		case coalesce && kind == state.RunEvents:
			d.againEvents = true
		case coalesce:
			d.again = true
		}
		d.mu.Unlock()
		if !coalesce && d.OnSkip != nil {
			d.OnSkip(kind, "running")
		}
		return
	}
	d.busy, d.current = true, kind
	d.mu.Unlock()
	for {
		d.report(ctx, kind)
		d.mu.Lock()
		if kind != state.RunEvents && d.Events != nil {
			// Also picks up events left queued by a failure, or stored by
			// another process while this one held the lock.
			d.againEvents = true
		}
		if ctx.Err() != nil || (!d.again && !d.againEvents) {
			d.busy, d.current = false, ""
			d.mu.Unlock()
			return
		}
		if d.again {
			kind = state.RunIncremental
			d.again = false
		} else {
			kind = state.RunEvents
			d.againEvents = false
		}
		d.current = kind
		d.mu.Unlock()
	}
}

// full runs a full reconcile in its own lane, unless one is going; then
// the events that queued meanwhile.
func (d *Daemon) full(ctx context.Context) {
	d.mu.Lock()
	if d.fullBusy {
		d.mu.Unlock()
		if d.OnSkip != nil {
			d.OnSkip(state.RunFull, "running")
		}
		return
	}
	d.fullBusy = true
	d.mu.Unlock()
	d.report(ctx, state.RunFull)
	d.mu.Lock()
	d.fullBusy = false
	d.mu.Unlock()
	if d.Events != nil {
		d.start(ctx, state.RunEvents, true)
	}
}

// report makes one run of kind, waiting for a lock held elsewhere, and tells
// OnRun about it.
func (d *Daemon) report(ctx context.Context, kind state.RunKind) {
	rep, err := d.Reconciler.Run(ctx, kind, true)
	switch {
	case IsLocked(err):
		d.Logger.Info("another syncd holds the project lock; skipping this run", zap.String("kind", string(kind)), zap.Error(err))
		if d.OnSkip != nil {
			d.OnSkip(kind, "locked")
		}
	case rep.RunID == 0 && ctx.Err() != nil:
		// Stopped while waiting for the lock: no run to tell of.
	case rep.RunID == 0 && kind == state.RunEvents && err == nil:
		// No event was queued: no run was made.
	case d.OnRun != nil:
		d.OnRun(rep, err)
	}
}
