package main

import (
	"strings"
	"testing"
)

// age moves every run and journal entry of the harness's database back by
// interval (a PostgreSQL interval).
func (h *harness) age(interval string) {
	h.t.Helper()
	for _, q := range []string{
		`UPDATE syncd.runs SET started_at = started_at - ?::interval, finished_at = finished_at - ?::interval`,
		`UPDATE syncd.journal SET created_at = created_at - ?::interval, finished_at = finished_at - ?::interval`,
	} {
		if err := h.store.DB().Exec(q, interval, interval).Error; err != nil {
			h.t.Fatal(err)
		}
	}
}

func (h *harness) count(table string) int {
	h.t.Helper()
	var n int
	if err := h.store.DB().Raw(`SELECT count(*) FROM ` + table).Scan(&n).Error; err != nil {
		h.t.Fatal(err)
	}
	return n
}

func TestPrune(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	h.load(crmRows(3))
	if code, out, errOut := h.run("backfill"); code != 0 {
		t.Fatalf("backfill exited %d:\n%s%s", code, out, errOut)
	}
	code, out, _ := h.run("prune")
	if code != 0 || !strings.Contains(out, "Pruned 0 journal entries, 0 runs and 0 processed Sinch events") {
		t.Errorf("prune of a fresh journal exited %d: %s", code, out)
	}
	h.age("31 days")
	code, out, _ = h.run("prune", "--dry-run")
	if code != 0 || !strings.Contains(out, "Would prune 3 journal entries, 1 run and 0 processed Sinch events ") || h.count("syncd.journal") != 3 {
		t.Errorf("prune --dry-run exited %d: %s", code, out)
	}
	code, out, _ = h.run("prune")
	if code != 0 || !strings.Contains(out, "Pruned 3 journal entries, 1 run and 0 processed Sinch events ") {
		t.Errorf("prune exited %d: %s", code, out)
	}
	if n := h.count("syncd.journal") + h.count("syncd.runs"); n != 0 {
		t.Errorf("%d rows left in the journal and runs", n)
	}
	if n := h.count("syncd.links"); n != 3 {
		t.Errorf("prune touched the links: %d left, want 3", n)
	}
}

// The daemon prunes at start, without waiting for its first run.
func TestDaemonPrunes(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	h.load(crmRows(2))
	if code, out, errOut := h.run("backfill"); code != 0 {
		t.Fatalf("backfill exited %d:\n%s%s", code, out, errOut)
	}
	h.age("31 days")
	h.setConfig(daemonConfig("schedule:\n  incremental: '@every 1h'\n  full: '@every 1h'\n"))
	h.startDaemon()
	eventually(t, "the daemon prunes the old run", func() bool {
		var old int
		h.store.DB().Raw(`SELECT count(*) FROM syncd.runs WHERE started_at < now() - interval '30 days'`).Scan(&old)
		return old == 0
	})
}

// Without --project, prune prunes every project's journal; with it, that
// project's only.
func TestPruneSeveralProjects(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	h.twoProjects("")
	h.load(crmRows(3))
	h.setRegion("eu", "crm-0001")
	h.setRegion("us", "crm-0002", "crm-0003")
	for _, p := range []string{"eu", "us"} {
		if code, out, errOut := h.run("--project", p, "backfill"); code != 0 {
			t.Fatalf("%s: backfill exited %d:\n%s%s", p, code, out, errOut)
		}
	}
	h.age("31 days")
	code, out, _ := h.run("--project", "us", "prune")
	if code != 0 || !strings.HasPrefix(out, "Pruned 2 journal entries, 1 run and 0 processed Sinch events of project us ") || strings.Count(out, "\n") != 1 {
		t.Errorf("prune --project us exited %d: %s", code, out)
	}
	code, out, _ = h.run("prune")
	if code != 0 || !strings.Contains(out, "Pruned 1 journal entry, 1 run and 0 processed Sinch events of project eu ") || !strings.Contains(out, "Pruned 0 journal entries, 0 runs and 0 processed Sinch events of project us ") {
		t.Errorf("prune exited %d: %s", code, out)
	}
	if n := h.count("syncd.journal") + h.count("syncd.runs"); n != 0 {
		t.Errorf("%d rows left in the journal and runs", n)
	}
}

// addEvents stores Sinch events of project p1 as the webhook would: done
// ones processed age ago, pending ones received age ago, and as many
// nonces seen age ago.
func (h *harness) addEvents(done, pending int, age string) {
	h.t.Helper()
	for i := range done + pending {
		doneAt := "now() - ?::interval"
		if i >= done {
			doneAt = "NULL"
		}
		q := `INSERT INTO syncd.webhook_events (project_id, event_key, trigger, received_at, payload, done_at)
			VALUES ('p1', md5(random()::text), 'CONTACT_UPDATE', now() - ?::interval, '{}', ` + doneAt + `)`
		args := []any{age}
		if i < done {
			args = append(args, age)
		}
		if err := h.store.DB().Exec(q, args...).Error; err != nil {
			h.t.Fatal(err)
		}
		if err := h.store.DB().Exec(`INSERT INTO syncd.webhook_nonces (nonce, seen_at) VALUES (md5(random()::text), now() - ?::interval)`, age).Error; err != nil {
			h.t.Fatal(err)
		}
	}
}

// Processed Sinch events follow journal.retention, queued ones stay, and
// nonces go once past their use; --dry-run counts and deletes nothing.
func TestPruneEvents(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	h.addEvents(3, 1, "31 days")
	h.addEvents(2, 1, "1 day")

	code, out, _ := h.run("prune", "--dry-run")
	if code != 0 || !strings.Contains(out, "Would prune 0 journal entries, 0 runs and 3 processed Sinch events that finished before") ||
		!strings.Contains(out, "Nothing was deleted (--dry-run).") {
		t.Errorf("prune --dry-run exited %d: %s", code, out)
	}
	if n := h.count("syncd.webhook_events"); n != 7 {
		t.Errorf("--dry-run deleted events: %d left, want 7", n)
	}
	code, out, _ = h.run("prune")
	if code != 0 || !strings.Contains(out, "Pruned 0 journal entries, 0 runs and 3 processed Sinch events ") {
		t.Errorf("prune exited %d: %s", code, out)
	}
	if n := h.count("syncd.webhook_events"); n != 4 {
		t.Errorf("%d events left, want the 2 recent and the 2 queued", n)
	}
	if n := h.count("syncd.webhook_events WHERE done_at IS NULL"); n != 2 {
		t.Errorf("%d queued events left, want 2", n)
	}
	if n := h.count("syncd.webhook_nonces"); n != 0 {
		t.Errorf("%d nonces left, want none: all are older than 10 minutes", n)
	}
	code, out, _ = h.run("prune", "--older-than", "1h")
	if code != 0 || !strings.Contains(out, " and 2 processed Sinch events ") {
		t.Errorf("prune --older-than 1h exited %d: %s", code, out)
	}
}

// The daemon prunes processed events with the journal.
func TestDaemonPrunesEvents(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	h.addEvents(2, 0, "31 days")
	h.setConfig(daemonConfig("schedule:\n  incremental: '@every 1h'\n  full: '@every 1h'\n"))
	h.startDaemon()
	eventually(t, "the daemon prunes the old events", func() bool {
		var n int
		h.store.DB().Raw(`SELECT count(*) FROM syncd.webhook_events`).Scan(&n)
		return n == 0
	})
}
