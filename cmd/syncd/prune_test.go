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
	if code != 0 || !strings.Contains(out, "Pruned 0 journal entries and 0 runs") {
		t.Errorf("prune of a fresh journal exited %d: %s", code, out)
	}
	h.age("31 days")
	code, out, _ = h.run("prune")
	if code != 0 || !strings.Contains(out, "Pruned 3 journal entries and 1 run ") {
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
	if code != 0 || !strings.HasPrefix(out, "Pruned 2 journal entries and 1 run of project us ") || strings.Count(out, "\n") != 1 {
		t.Errorf("prune --project us exited %d: %s", code, out)
	}
	code, out, _ = h.run("prune")
	if code != 0 || !strings.Contains(out, "Pruned 1 journal entry and 1 run of project eu ") || !strings.Contains(out, "Pruned 0 journal entries and 0 runs of project us ") {
		t.Errorf("prune exited %d: %s", code, out)
	}
	if n := h.count("syncd.journal") + h.count("syncd.runs"); n != 0 {
		t.Errorf("%d rows left in the journal and runs", n)
	}
}
