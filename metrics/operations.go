package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncd/syncd/state"
)

// The series in this file are the ones the shipped alert rules and
// dashboard (monitoring/) need beyond the counters of metrics.go: when the
// process started, what the schedule promises, how long the current lock
// hold has lasted, the client's current rate and the deletes the guard
// withheld.

// schedulePeek is how many firings ahead SetSchedule looks for the longest
// gap: enough to span a week of a daily or weekday schedule.
const schedulePeek = 10

// operational holds the collectors behind the methods below.
type operational struct {
	started  prometheus.Gauge
	period   *prometheus.GaugeVec
	withheld *prometheus.GaugeVec
	read     *readGauges
}

// projectOp is a Project's part of them.
type projectOp struct {
	period    *prometheus.GaugeVec
	withheld  *prometheus.GaugeVec
	heldSince atomic.Int64 // Unix nanoseconds of the current lock hold, 0 while not held
	rate      atomic.Pointer[func() float64]
}

func newOperational(m *Metrics) *operational {
	o := &operational{
		started: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "start_time_seconds",
			Help:      "Unix time at which this syncd process started. (process_start_time_seconds needs /proc/stat, which the unit's ProcSubset=pid hides.)",
		}),
		period: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "schedule_period_seconds",
			Help:      "Longest gap between two consecutive firings of this run kind's schedule (schedule.full, schedule.incremental) for the project. Set by syncd run only.",
		}, []string{labelProject, "kind"}),
		withheld: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "deletes_withheld",
			Help:      "Deletes the last finished run of this project and kind withheld because they exceeded sync.max_deletes or sync.max_delete_fraction. Set by syncd run only.",
		}, []string{labelProject, "kind"}),
		read: &readGauges{
			m: m,
			heldFor: prometheus.NewDesc(namespace+"_lock_held_seconds",
				"How long this process has held the project's advisory lock so far (one run), 0 while it does not hold it.",
				[]string{labelProject}, nil),
			rate: prometheus.NewDesc(namespace+"_sinch_rate_limit_rps",
				"The project's Sinch client's current rate limit in requests per second: sinch.rate_limit_rps, lowered after a 429 and climbing back while calls succeed.",
				[]string{labelProject}, nil),
		},
	}
	o.started.Set(float64(m.now().UnixNano()) / 1e9)
	return o
}

func (o *operational) collectors() []prometheus.Collector {
	return []prometheus.Collector{o.started, o.period, o.withheld, o.read}
}

// Schedule is the part of a cron schedule that SetSchedule needs
// (robfig/cron's Schedule, as sync.ParseSchedule returns it).
type Schedule interface {
	Next(time.Time) time.Time
}

// SetSchedule records the period of the schedule of run kind: the longest
// gap between two of its next firings, so that an irregular schedule
// (weekdays only) is judged by its longest wait. A schedule that never
// fires records nothing.
func (p *Project) SetSchedule(kind state.RunKind, s Schedule) {
	if p == nil {
		return
	}
	var longest time.Duration
	prev := s.Next(p.m.now())
	for range schedulePeek {
		next := s.Next(prev)
		if next.IsZero() || prev.IsZero() {
			break
		}
		longest = max(longest, next.Sub(prev))
		prev = next
	}
	if longest > 0 {
		p.period.WithLabelValues(bounded(kind, runKinds())).Set(longest.Seconds())
	}
}

// DeletesWithheld records how many deletes the last finished run of kind
// withheld under the mass-delete guard; 0 clears what an earlier run set.
func (p *Project) DeletesWithheld(kind state.RunKind, n int) {
	if p == nil {
		return
	}
	p.withheld.WithLabelValues(bounded(kind, runKinds())).Set(float64(max(n, 0)))
}

// WatchRateLimit exports rate, read at every scrape, as the current rate
// limit of the project's Sinch client. A later call replaces the earlier
// function.
func (p *Project) WatchRateLimit(rate func() float64) {
	if p == nil {
		return
	}
	p.rate.Store(&rate)
}

// lockHeld notes when the current lock hold began, for lock_held_seconds.
func (o *projectOp) lockHeld(now func() time.Time, held bool) {
	if !held {
		o.heldSince.Store(0)
		return
	}
	// A second true while held keeps the first start.
	o.heldSince.CompareAndSwap(0, now().UnixNano())
}

// readGauges are the per-project gauges read at scrape time: how long the
// lock has been held, and the client's rate limit. The rate limit is
// exported only once a function is set: no made-up 0 for a project without
// a Sinch client.
type readGauges struct {
	m       *Metrics
	heldFor *prometheus.Desc
	rate    *prometheus.Desc
}

func (g *readGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.heldFor
	ch <- g.rate
}

func (g *readGauges) Collect(ch chan<- prometheus.Metric) {
	now := g.m.now()
	for _, p := range g.m.projectList() {
		var held float64
		if since := p.heldSince.Load(); since != 0 {
			held = seconds(now.Sub(time.Unix(0, since)))
		}
		ch <- prometheus.MustNewConstMetric(g.heldFor, prometheus.GaugeValue, held, p.name)
		if fn := p.rate.Load(); fn != nil {
			ch <- prometheus.MustNewConstMetric(g.rate, prometheus.GaugeValue, (*fn)(), p.name)
		}
	}
}
