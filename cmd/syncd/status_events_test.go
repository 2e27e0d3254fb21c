package main

import (
	"strings"
	"testing"
)

func TestStatusShowsTheEventQueue(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	if err := h.store.DB().Exec(`INSERT INTO syncd.webhook_events (project_id, event_key, trigger, payload, done_at, attempts, error) VALUES
		('p1', 'a', 'CONTACT_UPDATE', '{}', NULL, 0, NULL),
		('p1', 'b', 'CONTACT_DELETE', '{}', NULL, 1, 'sinch: 503'),
		('p1', 'c', 'CONTACT_UPDATE', '{}', now(), 1, NULL),
		('p2', 'd', 'CONTACT_UPDATE', '{}', NULL, 0, NULL)`).Error; err != nil {
		t.Fatal(err)
	}
	code, out, errOut := h.run("status")
	if code != 0 {
		t.Fatalf("status exited %d: %s", code, errOut)
	}
	for _, want := range []string{"Sinch events: 2 queued (oldest received", "1 processed in the last hour", "last error: sinch: 503"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = h.run("status", "--format", "json")
	var st struct {
		Events struct {
			Pending      int `json:"pending"`
			Retried      int `json:"retried"`
			DoneLastHour int `json:"done_last_hour"`
		} `json:"events"`
	}
	if err := unmarshalStatus(out, &st); err != nil || code != 0 {
		t.Fatalf("status --format json exited %d: %v\n%s", code, err, out)
	}
	if st.Events.Pending != 2 || st.Events.Retried != 1 || st.Events.DoneLastHour != 1 {
		t.Errorf("events = %+v", st.Events)
	}
}
