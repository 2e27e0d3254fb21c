package metrics

import "time"

// SetClock replaces the clock of m's lock-hold and schedule gauges.
func SetClock(m *Metrics, now func() time.Time) { m.now = now }
