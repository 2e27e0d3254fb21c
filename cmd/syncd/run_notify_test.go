package main

import (
	"testing"
	"time"

	"github.com/syncd/syncd/sinch/sinchtest"
	"github.com/syncd/syncd/state/statetest"
)

// With crm.notify, a hard DELETE of a CRM row reaches Sinch without a tick
// (the contact deleted per policy), and a changed external_id re-keys the
// contact instead of deleting it and creating another.
func TestRunNotifyDeletesAndRekeys(t *testing.T) {
	h := newHarness(t)
	// 20 rows: one delete stays within sync.max_delete_fraction.
	h.setConfig(daemonConfig("crm:\n  notify: true\nschedule:\n  incremental: '@every 1h'\n  full: '@every 1h'\n"))
	h.migrate()
	h.load(crmRows(20))
	h.startDaemon()
	eventually(t, "the first run mirrors the CRM", func() bool { return len(h.emu.Contacts()) == 20 })
	before := h.byExternalID()

	execSQL := func(q string) {
		t.Helper()
		if err := h.store.DB().Exec(q).Error; err != nil {
			t.Fatal(err)
		}
	}
	h.emu.ResetCalls()
	execSQL(`DELETE FROM crm_contacts WHERE external_id = 'crm-0004'`)
	eventually(t, "the deleted row's contact is gone", func() bool { return len(h.byExternalID()["crm-0004"]) == 0 })
	if d, n := h.emu.Calls(sinchtest.OpDelete), h.writes(); d != 1 || n != 1 {
		t.Errorf("the hard delete cost %v, want one delete", h.emu.CallCounts())
	}

	h.emu.ResetCalls()
	execSQL(`UPDATE crm_contacts SET external_id = 'crm-renamed' WHERE external_id = 'crm-0006'`)
	eventually(t, "the renamed row's contact is re-keyed", func() bool {
		cs := h.byExternalID()["crm-renamed"]
		return len(cs) == 1
	})
	got := h.byExternalID()
	if cs := got["crm-renamed"]; cs[0].ID != before["crm-0006"][0].ID || len(got["crm-0006"]) != 0 {
		t.Errorf("crm-renamed has %s (want %s), crm-0006 %v", cs[0].ID, before["crm-0006"][0].ID, got["crm-0006"])
	}
	if n, p := h.writes(), h.emu.Calls(sinchtest.OpUpdate); n != 1 || p != 1 {
		t.Errorf("the rename cost %v, want one patch", h.emu.CallCounts())
	}
}

// The README's recipe for a CRM table of the user's own, whose key column
// is id, run as written: with crm.notify, a hard DELETE reaches Sinch
// without a tick, and a changed id re-keys the contact with one patch
// instead of deleting it and creating another.
func TestRunNotifyOnAUsersOwnTable(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	execSQL := func(q string, args ...any) {
		t.Helper()
		if err := h.store.DB().Exec(q, args...).Error; err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	execSQL(`CREATE SCHEMA crm`)
	execSQL(`CREATE TABLE crm.customers (
		id bigint PRIMARY KEY, first_name text, last_name text, email text, mobile text,
		locale text, tier text, modified_at timestamptz NOT NULL DEFAULT now(), archived_at timestamptz)`)
	for _, b := range statetest.ReadmeSQL(t, "crm.customers") {
		execSQL(b)
	}
	// 20 rows: one delete stays within sync.max_delete_fraction.
	execSQL(`INSERT INTO crm.customers (id, first_name, last_name, email, mobile, locale, tier)
		SELECT n, 'Person', n::text, 'p' || n || '@example.com', '+4673' || lpad(n::text, 7, '0'), 'en_us', 'gold'
		FROM generate_series(1, 20) n`)
	h.setConfig(daemonConfig("crm:\n  source: crm.v_sinch_contacts\n  notify: true\n" +
		"schedule:\n  incremental: '@every 1h'\n  full: '@every 1h'\n"))
	h.startDaemon()
	eventually(t, "the first run mirrors the CRM", func() bool { return len(h.emu.Contacts()) == 20 })
	eventually(t, "the first run has finished", func() bool {
		var n int
		h.store.DB().Raw(`SELECT count(*) FROM syncd.runs WHERE outcome <> 'running'`).Scan(&n)
		return n >= 1
	})
	before := h.byExternalID()

	h.emu.ResetCalls()
	committed := time.Now()
	execSQL(`DELETE FROM crm.customers WHERE id = 4`)
	eventually(t, "the deleted row's contact is gone", func() bool { return len(h.byExternalID()["4"]) == 0 })
	t.Logf("a hard DELETE reached Sinch %s after its commit", time.Since(committed).Round(time.Millisecond))
	if d, n := h.emu.Calls(sinchtest.OpDelete), h.writes(); d != 1 || n != 1 {
		t.Errorf("the hard delete cost %v, want one delete", h.emu.CallCounts())
	}

	h.emu.ResetCalls()
	committed = time.Now()
	execSQL(`UPDATE crm.customers SET id = 1006 WHERE id = 6`)
	eventually(t, "the renamed row's contact is re-keyed", func() bool { return len(h.byExternalID()["1006"]) == 1 })
	t.Logf("a changed id re-keyed its contact %s after its commit", time.Since(committed).Round(time.Millisecond))
	got := h.byExternalID()
	if cs := got["1006"]; cs[0].ID != before["6"][0].ID || len(got["6"]) != 0 {
		t.Errorf("1006 has %s (want %s), 6 has %v", cs[0].ID, before["6"][0].ID, got["6"])
	}
	if n, p := h.writes(), h.emu.Calls(sinchtest.OpUpdate); n != 1 || p != 1 {
		t.Errorf("the rename cost %v, want one patch", h.emu.CallCounts())
	}
}
