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
	return []string{"missing_signature", "bad_signature", "stale", "replay", "too_large", "bad_payload", "other_project", "unavailable"}
}

// eventMetrics are the webhook receiver's and the event processing's.
type eventMetrics struct {
	received   *prometheus.CounterVec
	duplicates prometheus.Counter
	refused    *prometheus.CounterVec
	applied    *prometheus.CounterVec
	lag        prometheus.Histogram
}

func newEventMetrics() *eventMetrics {
	e := &eventMetrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "webhook_events_received_total",
			Help:      "Sinch contact event callbacks verified and stored (or found stored already), by trigger.",
		}, []string{"trigger"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "webhook_events_duplicate_total",
			Help:      "Verified callbacks whose event was stored already (Sinch delivers some events more than once).",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "webhook_callbacks_refused_total",
			Help:      "Webhook callbacks not stored, by reason (missing or bad signature, stale timestamp, replayed nonce, body too large, bad payload, another project, store unavailable).",
		}, []string{"reason"}),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "webhook_events_applied_total",
			Help:      "Stored contact events processed: the contacts they name were reconciled. By trigger.",
		}, []string{"trigger"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "webhook_event_lag_seconds",
			Help:      "Time from an event's event_time in Sinch to the end of the run that processed it.",
			// 50ms to about 14 min: normally within a couple of seconds; a
			// daemon that was down catches up on minutes.
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 15),
		}),
	}
	for _, t := range eventTriggers() {
		e.received.WithLabelValues(t)
		e.applied.WithLabelValues(t)
	}
	for _, r := range refusalReasons() {
		e.refused.WithLabelValues(r)
	}
	return e
}

func (e *eventMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{e.received, e.duplicates, e.refused, e.applied, e.lag}
}

// CallbackReceived records a verified contact event; it makes *Metrics a
// webhook.Observer.
func (m *Metrics) CallbackReceived(trigger string, duplicate bool) {
	if m == nil {
		return
	}
	m.events.received.WithLabelValues(bounded(trigger, eventTriggers())).Inc()
	if duplicate {
		m.events.duplicates.Inc()
	}
}

// CallbackRefused records a callback that was not stored, by reason.
func (m *Metrics) CallbackRefused(reason string) {
	if m == nil {
		return
	}
	m.events.refused.WithLabelValues(bounded(reason, refusalReasons())).Inc()
}

// EventApplied records a processed event of trigger, lag after its
// event_time (a negative lag, from a skewed clock, counts as 0).
func (m *Metrics) EventApplied(trigger string, lag time.Duration) {
	if m == nil {
		return
	}
	m.events.applied.WithLabelValues(bounded(trigger, eventTriggers())).Inc()
	m.events.lag.Observe(seconds(lag))
}
