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
	if err := h.store.DB().Exec(`INSERT INTO syncd.webhook_events (id, project_id, event_key, trigger, payload, attempts, error, parked_at) VALUES
		(101, 'p1', 'e', 'CONTACT_UPDATE', '{}', 5, 'read contact X: HTTP 400', now()),
		(102, 'p1', 'f', 'CONTACT_MERGE', '{}', 5, 'read contact X: HTTP 400', now()),
		(103, 'p1', 'g', 'CONTACT_UPDATE', '{}', 5, 'read contact Y: HTTP 404', now())`).Error; err != nil {
		t.Fatal(err)
	}
	code, out, errOut := h.run("status")
	if code != 0 {
		t.Fatalf("status exited %d: %s", code, errOut)
	}
	for _, want := range []string{"Sinch events: 2 queued (oldest received", "1 processed in the last hour", "last error: sinch: 503",
		"Parked: 3 events failed alone", "syncd events retry", "  2 events (events 101, 102): read contact X: HTTP 400",
		"  1 event (events 103): read contact Y: HTTP 404"} {
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
			Parked       int `json:"parked"`
			Reasons      []struct {
				Reason string  `json:"reason"`
				Events int     `json:"events"`
				IDs    []int64 `json:"ids"`
			} `json:"parked_reasons"`
		} `json:"events"`
	}
	if err := unmarshalStatus(out, &st); err != nil || code != 0 {
		t.Fatalf("status --format json exited %d: %v\n%s", code, err, out)
	}
	if e := st.Events; e.Pending != 2 || e.Retried != 1 || e.DoneLastHour != 1 || e.Parked != 3 || len(e.Reasons) != 2 ||
		e.Reasons[0].Events != 2 || e.Reasons[0].Reason != "read contact X: HTTP 400" || len(e.Reasons[0].IDs) != 2 {
		t.Errorf("events = %+v", st.Events)
	}
}
