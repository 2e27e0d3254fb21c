package sync_test

import (
	"testing"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/sinch/sinchtest"
	"github.com/syncd/syncd/state"
)

// A renamed record keeps its contact: the next incremental run re-keys it
// with one patch, as a full run would, and deletes nothing. Reported by the
// CRM, the rename is taken at its word once both rows are read; without the
// report the run finds the old row's contact through the identities the
// new row holds, and re-keys it as the full run does (same identities, same
// fields).
func TestIncrementalRekeysAReportedRename(t *testing.T) {
	tests := []struct {
		name     string
		reported bool
		patches  int
	}{
		{"reported", true, 1},
		{"not reported", false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, emu, store := newChaosReconciler(t, sinchtest.Faults{})
			if err := crm.UpsertRecords(t.Context(), store.SQL(), "crm_contacts", chaosRows(20, "Person")); err != nil {
				t.Fatal(err)
			}
			mustRun(t, rec, state.RunFull)
			old := byExternalID(emu)["crm-00003"][0]
			execSQL(t, store, `UPDATE crm_contacts SET external_id = 'crm-renamed' WHERE external_id = 'crm-00003'`)
			if tt.reported {
				rec.NoteRename("crm-00003", "crm-renamed")
			}
			emu.ResetCalls()
			mustRun(t, rec, state.RunIncremental)
			if n := emu.Calls(sinchtest.OpCreate) + emu.Calls(sinchtest.OpDelete) + emu.Calls(sinchtest.OpMerge); n != 0 {
				t.Errorf("the rename cost %v", emu.CallCounts())
			}
			if n := emu.Calls(sinchtest.OpUpdate); n != tt.patches {
				t.Errorf("%d patches, want %d", n, tt.patches)
			}
			got := byExternalID(emu)
			if cs := got["crm-renamed"]; len(cs) != 1 || cs[0].ID != old.ID || len(got["crm-00003"]) != 0 {
				t.Errorf("crm-renamed has %v, crm-00003 %v; want the old contact %s re-keyed", cs, got["crm-00003"], old.ID)
			}
			links, err := store.Links(t.Context(), "chaos")
			if err != nil {
				t.Fatal(err)
			}
			if _, stale := links["crm-00003"]; stale || links["crm-renamed"].ContactID != old.ID {
				t.Errorf("links: old %v, new %+v", stale, links["crm-renamed"])
			}
			// A full run then has nothing to do.
			emu.ResetCalls()
			mustRun(t, rec, state.RunFull)
			if n := writes(emu); n != 0 {
				t.Errorf("the next full run wrote %d times", n)
			}
		})
	}
}

// A hint that no longer holds (the old row is back) changes nothing.
func TestStaleRenameIsIgnored(t *testing.T) {
	rec, emu, store := newChaosReconciler(t, sinchtest.Faults{})
	if err := crm.UpsertRecords(t.Context(), store.SQL(), "crm_contacts", chaosRows(20, "Person")); err != nil {
		t.Fatal(err)
	}
	mustRun(t, rec, state.RunFull)
	rec.NoteRename("crm-00003", "crm-00004") // crm-00003 still exists; crm-00004 is linked
	rec.NoteRename("crm-00005", "crm-nowhere")
	emu.ResetCalls()
	mustRun(t, rec, state.RunIncremental)
	if n := writes(emu); n != 0 {
		t.Errorf("stale hints cost %v", emu.CallCounts())
	}
}
