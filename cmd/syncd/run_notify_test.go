package main

import (
	"testing"

	"github.com/syncd/syncd/sinch/sinchtest"
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
