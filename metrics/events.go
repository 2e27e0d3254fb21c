package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// eventTriggers are the webhook.Trigger* constants.
func eventTriggers() []string {
	return []string{"CONTACT_CREATE", "CONTACT_DELETE", "CONTACT_IDENTITIES_DUPLICATION", "CONTACT_MERGE", "CONTACT_UPDATE"}
}

// refusalReasons are the webhook.Reason* constants.
func refusalReasons() []string {
	return []string{"missing_signature", "bad_signature", "stale", "replay", "too_large", "bad_payload", "other_project", "unavailable", "busy", "slow_body"}
}

// eventMetrics are the webhook receiver's and the event processing's.
type eventMetrics struct {
	received   *prometheus.CounterVec
	duplicates *prometheus.CounterVec
	refused    *prometheus.CounterVec
	applied    *prometheus.CounterVec
	lag        *prometheus.HistogramVec
	parked     *prometheus.GaugeVec
}

// projectEvents are one project's part of them.
type projectEvents struct {
	received   *prometheus.CounterVec
	duplicates prometheus.Counter
	refused    *prometheus.CounterVec
	applied    *prometheus.CounterVec
	lag        prometheus.Observer
	parked     prometheus.Gauge
}

func newEventMetrics() *eventMetrics {
	return &eventMetrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "webhook_events_received_total",
			Help:      "Sinch contact event callbacks verified and stored (or found stored already), by project and trigger.",
		}, []string{labelProject, "trigger"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "webhook_events_duplicate_total",
			Help:      "Verified callbacks whose event was stored already (Sinch delivers some events more than once).",
		}, []string{labelProject}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "webhook_callbacks_refused_total",
			Help:      "Webhook callbacks not stored, by project and reason (missing or bad signature, stale timestamp, replayed nonce, body too large, bad payload, another project, store unavailable).",
		}, []string{labelProject, "reason"}),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "webhook_events_applied_total",
			Help:      "Stored contact events processed: the contacts they name were reconciled. By project and trigger.",
		}, []string{labelProject, "trigger"}),
		lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "webhook_event_lag_seconds",
			Help:      "Time from an event's event_time in Sinch to the end of the run that processed it.",
			// 50ms to about 14 min: normally within a couple of seconds; a
			// daemon that was down catches up on minutes.
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 15),
		}, []string{labelProject}),
		parked: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "webhook_events_parked",
			Help:      "Stored contact events set aside after failing alone five times, as of the last event run; `syncd events retry` puts them back.",
		}, []string{labelProject}),
	}
}

func (e *eventMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{e.received, e.duplicates, e.refused, e.applied, e.lag, e.parked}
}

// curry returns the project's part, its series of fixed label values
// created at 0.
func (e *eventMetrics) curry(l prometheus.Labels) projectEvents {
	p := projectEvents{
		received:   e.received.MustCurryWith(l),
		duplicates: e.duplicates.With(l),
		refused:    e.refused.MustCurryWith(l),
		applied:    e.applied.MustCurryWith(l),
		lag:        e.lag.With(l),
		parked:     e.parked.With(l),
	}
	for _, t := range eventTriggers() {
		p.received.WithLabelValues(t)
		p.applied.WithLabelValues(t)
	}
	for _, r := range refusalReasons() {
		p.refused.WithLabelValues(r)
	}
	return p
}

// CallbackReceived records a verified contact event; it makes *Project a
// webhook.Observer.
func (p *Project) CallbackReceived(trigger string, duplicate bool) {
	if p == nil {
		return
	}
	p.events.received.WithLabelValues(bounded(trigger, eventTriggers())).Inc()
	if duplicate {
		p.events.duplicates.Inc()
	}
}

// CallbackRefused records a callback that was not stored, by reason.
func (p *Project) CallbackRefused(reason string) {
	if p == nil {
		return
	}
	p.events.refused.WithLabelValues(bounded(reason, refusalReasons())).Inc()
}

// EventApplied records a processed event of trigger, lag after its
// event_time (a negative lag, from a skewed clock, counts as 0).
func (p *Project) EventApplied(trigger string, lag time.Duration) {
	if p == nil {
		return
	}
	p.events.applied.WithLabelValues(bounded(trigger, eventTriggers())).Inc()
	p.events.lag.Observe(seconds(lag))
}

// EventsParked sets how many of the project's events are parked.
func (p *Project) EventsParked(n int) {
	if p == nil {
		return
	}
	p.events.parked.Set(float64(n))
}
