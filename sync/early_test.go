package sync_test

import (
	"context"
	"fmt"
	"iter"
	"slices"
	stdsync "sync"
	"testing"
	"time"

	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/sinch/sinchtest"
)

// recordingSinch notes the order of the calls a run makes.
type recordingSinch struct {
	*sinch.Client
	mu    stdsync.Mutex
	calls []string
}

func (s *recordingSinch) note(op string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, op)
}

func (s *recordingSinch) Pages(ctx context.Context, req sinch.ListContactsRequest) iter.Seq2[[]sinch.Contact, error] {
	return func(yield func([]sinch.Contact, error) bool) {
		for page, err := range s.Client.Pages(ctx, req) {
			s.note("list")
			if !yield(page, err) {
				return
			}
		}
	}
}

func (s *recordingSinch) UpdateContact(ctx context.Context, id string, body sinch.Contact, mask []string) (*sinch.Contact, error) {
	s.note("update")
	return s.Client.UpdateContact(ctx, id, body, mask)
}

// TestFullRunPatchesWhileListing checks that a full run sends the patches of
// linked contacts while the list chain is still going, and that the result
// is the same as a run that waits.
func TestFullRunPatchesWhileListing(t *testing.T) {
	rec, emu, store := newChaosReconciler(t, sinchtest.Faults{})
	ctx := context.Background()
	rows := chaosRows(400, "Person")
	if err := store.UpsertRecords(ctx, "crm_contacts", rows); err != nil {
		t.Fatal(err)
	}
	converge(t, rec)
	for i := range rows {
		rows[i].DisplayName = str(fmt.Sprintf("Renamed %d", i))
	}
	if err := store.UpsertRecords(ctx, "crm_contacts", rows); err != nil {
		t.Fatal(err)
	}

	// A round trip long enough that the CRM read finishes early in the chain.
	emu.SetFaults(sinchtest.Faults{Latency: 20 * time.Millisecond})
	rs := &recordingSinch{Client: rec.Sinch.(*sinch.Client)}
	rec.Sinch = rs
	emu.ResetCalls()
	rep, err := rec.Backfill(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Applied.Patch != 400 || emu.Calls(sinchtest.OpUpdate) != 400 || emu.Calls(sinchtest.OpList) != 20 {
		t.Errorf("applied %+v with calls %v, want 400 patches and 20 list calls", rep.Applied, emu.CallCounts())
	}
	if s := rep.Plan.Summary(); s.Patch != 400 || s.Unchanged != 0 {
		t.Errorf("summary %+v, want 400 patches and nothing unchanged", s)
	}
	firstUpdate := slices.Index(rs.calls, "update")
	lastList := -1
	for i, c := range rs.calls {
		if c == "list" {
			lastList = i
		}
	}
	if firstUpdate < 0 || firstUpdate > lastList {
		t.Errorf("no patch was sent before the last page arrived (first update at %d, last list at %d)", firstUpdate, lastList)
	}
	for _, c := range emu.Contacts() {
		var i int
		fmt.Sscanf(c.ExternalID, "crm-%05d", &i)
		if c.DisplayName != fmt.Sprintf("Renamed %d", i) {
			t.Fatalf("%s is named %q", c.ExternalID, c.DisplayName)
		}
	}
	plan, err := rec.Plan(ctx)
	if err != nil || !plan.Empty() {
		t.Errorf("plan after the run: %v, %v", plan.Summary(), err)
	}
}
