package metrics_test

import (
	"testing"
	"time"

	"github.com/syncd/syncd/metrics"
	"github.com/syncd/syncd/state"
)

// fakeClock is a settable clock for the gauges that read the time.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestLockHeldSeconds(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		steps []func(p *metrics.Project, c *fakeClock)
		want  float64
	}{
		{"never held", nil, 0},
		{"held for 90s", []func(*metrics.Project, *fakeClock){
			func(p *metrics.Project, _ *fakeClock) { p.SetLockHeld(true) },
			func(_ *metrics.Project, c *fakeClock) { c.t = c.t.Add(90 * time.Second) },
		}, 90},
		{"a second acquire keeps the first start", []func(*metrics.Project, *fakeClock){
			func(p *metrics.Project, _ *fakeClock) { p.SetLockHeld(true) },
			func(_ *metrics.Project, c *fakeClock) { c.t = c.t.Add(time.Minute) },
			func(p *metrics.Project, _ *fakeClock) { p.SetLockHeld(true) },
			func(_ *metrics.Project, c *fakeClock) { c.t = c.t.Add(time.Minute) },
		}, 120},
		{"released", []func(*metrics.Project, *fakeClock){
			func(p *metrics.Project, _ *fakeClock) { p.SetLockHeld(true) },
			func(_ *metrics.Project, c *fakeClock) { c.t = c.t.Add(time.Hour) },
			func(p *metrics.Project, _ *fakeClock) { p.SetLockHeld(false) },
		}, 0},
		{"the next hold starts from 0", []func(*metrics.Project, *fakeClock){
			func(p *metrics.Project, _ *fakeClock) { p.SetLockHeld(true) },
			func(_ *metrics.Project, c *fakeClock) { c.t = c.t.Add(time.Hour) },
			func(p *metrics.Project, _ *fakeClock) { p.SetLockHeld(false) },
			func(p *metrics.Project, _ *fakeClock) { p.SetLockHeld(true) },
			func(_ *metrics.Project, c *fakeClock) { c.t = c.t.Add(5 * time.Second) },
		}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, c := metrics.New(), &fakeClock{t: start}
			metrics.SetClock(m, c.now)
			p := m.Project(testProject)
			for _, step := range tt.steps {
				step(p, c)
			}
			checkSamples(t, scrapeProject(t, m), map[string]float64{`syncd_lock_held_seconds`: tt.want}, nil)
		})
	}
}

// every fires at the given offsets after each midnight (UTC).
type every []time.Duration

func (e every) Next(after time.Time) time.Time {
	day := after.Truncate(24 * time.Hour)
	for {
		for _, off := range e {
			if t := day.Add(off); t.After(after) {
				return t
			}
		}
		day = day.Add(24 * time.Hour)
	}
}

// never is a schedule that does not fire (robfig/cron returns the zero
// time for a spec like "0 0 30 2 *").
type never struct{}

func (never) Next(time.Time) time.Time { return time.Time{} }

func TestSetSchedule(t *testing.T) {
	tests := []struct {
		name     string
		kind     state.RunKind
		schedule metrics.Schedule
		want     map[string]float64
		absent   []string
	}{
		{"daily", state.RunFull, every{3 * time.Hour}, map[string]float64{`syncd_schedule_period_seconds{kind="full"}`: 86400}, nil},
		{"twice a day, unevenly: the longest gap", state.RunFull, every{3 * time.Hour, 5 * time.Hour},
			map[string]float64{`syncd_schedule_period_seconds{kind="full"}`: 22 * 3600}, nil},
		{"every minute", state.RunIncremental, cronEvery(time.Minute), map[string]float64{`syncd_schedule_period_seconds{kind="incremental"}`: 60}, nil},
		{"never fires", state.RunFull, never{}, nil, []string{`syncd_schedule_period_seconds{kind="full"}`}},
		{"unknown kind", "weekly", every{time.Hour}, map[string]float64{`syncd_schedule_period_seconds{kind="other"}`: 86400}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, p := newProject()
			metrics.SetClock(m, (&fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}).now)
			p.SetSchedule(tt.kind, tt.schedule)
			checkSamples(t, scrapeProject(t, m), tt.want, tt.absent)
		})
	}
}

// cronEvery is "@every d".
type cronEvery time.Duration

func (e cronEvery) Next(after time.Time) time.Time { return after.Add(time.Duration(e)) }

func TestDeletesWithheld(t *testing.T) {
	tests := []struct {
		name string
		runs [][2]any // kind, withheld
		want map[string]float64
	}{
		{"guard tripped", [][2]any{{state.RunFull, 250}}, map[string]float64{`syncd_deletes_withheld{kind="full"}`: 250}},
		{"the next run clears it", [][2]any{{state.RunFull, 250}, {state.RunFull, 0}}, map[string]float64{`syncd_deletes_withheld{kind="full"}`: 0}},
		{"kinds apart", [][2]any{{state.RunFull, 250}, {state.RunIncremental, 0}},
			map[string]float64{`syncd_deletes_withheld{kind="full"}`: 250, `syncd_deletes_withheld{kind="incremental"}`: 0}},
		{"negative is 0", [][2]any{{state.RunIncremental, -1}}, map[string]float64{`syncd_deletes_withheld{kind="incremental"}`: 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, p := newProject()
			for _, r := range tt.runs {
				p.DeletesWithheld(r[0].(state.RunKind), r[1].(int))
			}
			checkSamples(t, scrapeProject(t, m), tt.want, nil)
		})
	}
}

func TestWatchRateLimit(t *testing.T) {
	m, p := newProject()
	checkSamples(t, scrapeProject(t, m), nil, []string{`syncd_sinch_rate_limit_rps`})
	rps := 20.0
	p.WatchRateLimit(func() float64 { return rps })
	checkSamples(t, scrapeProject(t, m), map[string]float64{`syncd_sinch_rate_limit_rps`: 20}, nil)
	rps = 2.5 // read at every scrape
	checkSamples(t, scrapeProject(t, m), map[string]float64{`syncd_sinch_rate_limit_rps`: 2.5}, nil)
	p.WatchRateLimit(func() float64 { return 7 })
	checkSamples(t, scrapeProject(t, m), map[string]float64{`syncd_sinch_rate_limit_rps`: 7}, nil)
}

func TestStartTime(t *testing.T) {
	before := time.Now()
	got := scrape(t, metrics.New())[`syncd_start_time_seconds`]
	after := time.Now()
	if got < float64(before.Unix()) || got > float64(after.Unix()+1) {
		t.Errorf("syncd_start_time_seconds = %v, want between %d and %d", got, before.Unix(), after.Unix()+1)
	}
}
