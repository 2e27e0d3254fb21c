package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The series in this file are the ones the shipped alert rules and
// dashboard (monitoring/) need beyond the counters of metrics.go: what the
// schedule promises, how long the current lock hold has lasted, the
// client's current rate and the deletes the guard withheld.

// schedulePeek is how many firings ahead SetSchedule looks for the longest
// gap: enough to span a week of a daily or weekday schedule.
const schedulePeek = 10

// operational holds the collectors behind the methods below.
type operational struct {
	now       func() time.Time
	started   prometheus.Gauge
	period    *prometheus.GaugeVec
	withheld  *prometheus.GaugeVec
	heldSince atomic.Int64 // Unix nanoseconds of the current lock hold, 0 while not held
	rate      *funcGauge
}

func newOperational() *operational {
	o := &operational{
		now: time.Now,
		started: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "start_time_seconds",
			Help:      "Unix time at which this syncd process started. (process_start_time_seconds needs /proc/stat, which the unit's ProcSubset=pid hides.)",
		}),
		period: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "schedule_period_seconds",
			Help:      "Longest gap between two consecutive firings of this run kind's schedule (schedule.full, schedule.incremental). Set by syncd run only.",
		}, []string{"kind"}),
		withheld: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "deletes_withheld",
			Help:      "Deletes the last finished run of this kind withheld because they exceeded sync.max_deletes or sync.max_delete_fraction. Set by syncd run only.",
		}, []string{"kind"}),
		rate: &funcGauge{desc: prometheus.NewDesc(namespace+"_sinch_rate_limit_rps",
			"The Sinch client's current rate limit in requests per second: sinch.rate_limit_rps, lowered after a 429 and climbing back while calls succeed.",
			nil, nil)},
	}
	o.started.Set(float64(o.now().UnixNano()) / 1e9)
	return o
}

func (o *operational) collectors() []prometheus.Collector {
	held := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace,
		Name:      "lock_held_seconds",
		Help:      "How long this process has held the per-project advisory lock so far (one run), 0 while it does not hold it.",
	}, func() float64 {
		since := o.heldSince.Load()
		if since == 0 {
			return 0
		}
		return seconds(o.now().Sub(time.Unix(0, since)))
	})
	return []prometheus.Collector{o.started, o.period, o.withheld, held, o.rate}
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
func (m *Metrics) SetSchedule(kind string, s Schedule) {
	if m == nil {
		return
	}
	var longest time.Duration
	prev := s.Next(m.op.now())
	for range schedulePeek {
		next := s.Next(prev)
		if next.IsZero() || prev.IsZero() {
			break
		}
		longest = max(longest, next.Sub(prev))
		prev = next
	}
	if longest > 0 {
		m.op.period.WithLabelValues(bounded(kind, runKinds())).Set(longest.Seconds())
	}
}

// DeletesWithheld records how many deletes the last finished run of kind
// withheld under the mass-delete guard; 0 clears what an earlier run set.
func (m *Metrics) DeletesWithheld(kind string, n int) {
	if m == nil {
		return
	}
	m.op.withheld.WithLabelValues(bounded(kind, runKinds())).Set(float64(max(n, 0)))
}

// WatchRateLimit exports rate, read at every scrape, as the client's
// current rate limit. A later call replaces the earlier function.
func (m *Metrics) WatchRateLimit(rate func() float64) {
	if m == nil {
		return
	}
	m.op.rate.fn.Store(&rate)
}

// lockHeld notes when the current lock hold began, for lock_held_seconds.
func (o *operational) lockHeld(held bool) {
	if !held {
		o.heldSince.Store(0)
		return
	}
	// A second true while held keeps the first start.
	o.heldSince.CompareAndSwap(0, o.now().UnixNano())
}

// funcGauge is a gauge read from a function that is set after the registry
// is built, and exports nothing until then: no made-up 0 for a process
// without a Sinch client.
type funcGauge struct {
	desc *prometheus.Desc
	fn   atomic.Pointer[func() float64]
}

func (g *funcGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g *funcGauge) Collect(ch chan<- prometheus.Metric) {
	if fn := g.fn.Load(); fn != nil {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, (*fn)())
	}
}
