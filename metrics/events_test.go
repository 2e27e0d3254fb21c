package metrics_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/syncd/syncd/metrics"
	"github.com/syncd/syncd/webhook"
)

var _ webhook.Observer = (*metrics.Project)(nil)

func TestEventMetrics(t *testing.T) {
	m, p := newProject()
	var want []string
	for _, trigger := range webhook.Triggers() {
		p.CallbackReceived(trigger, false)
		p.EventApplied(trigger, 1500*time.Millisecond)
		want = append(want, `syncd_webhook_events_received_total{trigger="`+trigger+`"}`,
			`syncd_webhook_events_applied_total{trigger="`+trigger+`"}`)
	}
	for _, reason := range webhook.Reasons() {
		p.CallbackRefused(reason)
		want = append(want, `syncd_webhook_callbacks_refused_total{reason="`+reason+`"}`)
	}
	p.CallbackReceived(webhook.TriggerUpdate, true)
	got := scrapeProject(t, m)
	for _, k := range want {
		if got[k] < 1 {
			t.Errorf("%s = %v, want at least 1", k, got[k])
		}
	}
	checkSamples(t, got, map[string]float64{
		`syncd_webhook_events_received_total{trigger="CONTACT_UPDATE"}`: 2,
		`syncd_webhook_events_duplicate_total`:                          1,
		`syncd_webhook_event_lag_seconds_count`:                         5,
		`syncd_webhook_event_lag_seconds_sum`:                           7.5,
	}, nil)

	// Junk labels cannot grow the series.
	for _, junk := range []string{"x", "y", "z"} {
		p.CallbackReceived(junk, false)
		p.CallbackRefused(junk)
	}
	for name, n := range map[string]int{
		"syncd_webhook_events_received_total":   len(webhook.Triggers()) + 1,
		"syncd_webhook_callbacks_refused_total": len(webhook.Reasons()) + 1,
	} {
		if c, err := testutil.GatherAndCount(m.Registry(), name); err != nil || c != n {
			t.Errorf("%s: %d series (%v), want %d", name, c, err, n)
		}
	}
	var nilM *metrics.Project
	nilM.CallbackReceived(webhook.TriggerCreate, true)
	nilM.CallbackRefused(webhook.ReasonStale)
	nilM.EventApplied(webhook.TriggerCreate, time.Second)
}
