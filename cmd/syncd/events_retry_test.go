package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/syncd/syncd/sinch"
)

// An event that cannot be processed (its contact's GET answers 400) is
// parked by the daemon after its last attempt alone, and holds up nothing:
// hand edits after it are put back. It shows in /metrics, syncd status and
// syncd explain of its record, and syncd events retry puts it back, after
// which the daemon processes it at once.
func TestParkedEventIsShownAndRetried(t *testing.T) {
	h, _ := eventHarness(t, 6)
	const bad = "01BADBADBADBADBADBADBADBAD"
	h.emu.RefuseReads(func(id string) error {
		if id == bad {
			return errors.New("contact_id: malformed")
		}
		return nil
	})
	// As the webhook stores it, after four failed attempts alone: the
	// daemon's first event run makes the fifth.
	payload := fmt.Sprintf(`{"app_id":"app1","project_id":"p1","accepted_time":"2026-12-01T10:00:00Z","event_time":"2026-12-01T10:00:00Z",`+
		`"contact_update_notification":{"contact":{"id":%q,"external_id":"crm-0002","display_name":"Bad",`+
		`"channel_identities":[{"channel":"SMS","identity":"46730000002"}]}}}`, bad)
	var id int64
	if err := h.store.DB().Raw(`INSERT INTO syncd.webhook_events (project_id, event_key, trigger, payload, attempts, error)
		VALUES ('p1', 'bad', 'CONTACT_UPDATE', ?::jsonb, 4, 'read contact: HTTP 400') RETURNING id`, payload).Scan(&id).Error; err != nil {
		t.Fatal(err)
	}
	parked := func() bool {
		var n int
		h.store.DB().Raw(`SELECT count(*) FROM syncd.webhook_events WHERE parked_at IS NOT NULL`).Scan(&n)
		return n == 1
	}
	d := h.startDaemon()
	eventually(t, "the bad event is parked", parked)
	metric := func(want string) func() bool {
		return func() bool {
			return strings.Contains(httpGet(t, "http://"+d.addr+"/metrics"), "\nsyncd_webhook_events_parked{project=\"default\"} "+want+"\n")
		}
	}
	eventually(t, "/metrics counts it", metric("1"))

	// It holds up nothing: hand edits are put back.
	before := h.byExternalID()
	for _, ext := range []string{"crm-0001", "crm-0002", "crm-0003", "crm-0004", "crm-0005"} {
		if _, err := h.emu.EditAsPerson(before[ext][0].ID, func(c *sinch.Contact) { c.DisplayName = "Hand Edit" }); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the hand edits are put back", func() bool {
		for _, cs := range h.byExternalID() {
			if len(cs) != 1 || cs[0].DisplayName == "Hand Edit" {
				return false
			}
		}
		return true
	})

	code, out, errOut := h.run("status")
	if want := fmt.Sprintf("  1 event (events %d): read contact %s: ", id, bad); code != 0 || !strings.Contains(out, "Parked: 1 event failed alone") ||
		!strings.Contains(out, want) || !strings.Contains(out, "HTTP 400") {
		t.Errorf("status exited %d, want %q and the reason:\n%s%s", code, want, out, errOut)
	}
	code, out, errOut = h.run("explain", "crm-0002")
	if want := fmt.Sprintf("  event %d CONTACT_UPDATE, received ", id); code != 0 || !strings.Contains(out, "Parked Sinch events") ||
		!strings.Contains(out, want) || !strings.Contains(out, "after 5 attempts: read contact "+bad) {
		t.Errorf("explain crm-0002 exited %d, want %q:\n%s%s", code, want, out, errOut)
	}
	if code, out, _ := h.run("explain", "crm-0003"); code != 0 || strings.Contains(out, "Parked") {
		t.Errorf("explain crm-0003 exited %d and shows a parked event:\n%s", code, out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "name the events to put back"},
		{[]string{"--all", "1"}, "not both"},
		{[]string{"x"}, `"x" is not an event id`},
		{[]string{"999999"}, "no parked event of project default has the id 999999"},
	} {
		if code, out, errOut := h.run(append([]string{"events", "retry"}, tc.args...)...); code != exitError || !strings.Contains(errOut, tc.want) {
			t.Errorf("events retry %v exited %d, want 1 and %q:\n%s%s", tc.args, code, tc.want, out, errOut)
		}
	}

	// Once Sinch reads the id again (404: gone), the retry goes through.
	h.emu.RefuseReads(nil)
	code, out, errOut = h.run("events", "retry", fmt.Sprint(id))
	if code != 0 || !strings.Contains(out, fmt.Sprintf("Put 1 parked event back in the queue (%d)", id)) {
		t.Errorf("events retry exited %d:\n%s%s", code, out, errOut)
	}
	eventually(t, "the daemon processes it", func() bool {
		var done bool
		h.store.DB().Raw(`SELECT done_at IS NOT NULL FROM syncd.webhook_events WHERE id = ?`, id).Scan(&done)
		return done
	})
	eventually(t, "/metrics counts none", metric("0"))
	if code, out, _ := h.run("status"); code != 0 || strings.Contains(out, "Parked") {
		t.Errorf("status still shows a parked event:\n%s", out)
	}
}
