package sync_test

import (
	"encoding/json"
	"testing"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/sinch"
	contactsync "github.com/syncd/syncd/sync"
)

// FuzzNormalizePhone checks that whatever the CRM holds, parsing never
// panics and an accepted number is a fixed point: E.164 parses to itself.
func FuzzNormalizePhone(f *testing.F) {
	for _, s := range []string{"+46732000001", "+1 (415) 555-0100", "073-200 00 01", "", "+", "abc", "+4673200000199999999", "00 46 73 200"} {
		f.Add(s, "SE")
		f.Add(s, "")
	}
	f.Fuzz(func(t *testing.T, raw, region string) {
		e164, err := contactsync.NormalizePhone(raw, region)
		if err != nil {
			return
		}
		again, err := contactsync.NormalizePhone(e164, "")
		if err != nil || again != e164 {
			t.Fatalf("NormalizePhone(%q) = %q, which normalises to %q, %v", raw, e164, again, err)
		}
	})
}

// FuzzDiff feeds the diff arbitrary CRM rows and Sinch contacts (as JSON)
// and checks the plan's invariants: no panic, no write to a contact syncd
// does not own, every patch names its fields, and a record mirrored exactly
// needs nothing.
func FuzzDiff(f *testing.F) {
	f.Add(`[{"ExternalID":"crm-1","Phone":"+46732000001","Email":"a@b.c"}]`,
		`[{"id":"C1","external_id":"crm-1","channel_identities":[{"channel":"SMS","identity":"46732000001"}]}]`, "crm-")
	f.Add(`[{"ExternalID":"crm-1","Phone":"+46732000001"},{"ExternalID":"crm-2","Phone":"+46732000001"}]`,
		`[{"id":"C1","channel_identities":[{"channel":"SMS","identity":"46732000001"}]},{"id":"C2","external_id":"x"}]`, "")
	f.Fuzz(func(t *testing.T, recordsJSON, contactsJSON, prefix string) {
		var records []crm.Record
		var contacts []sinch.Contact
		if json.Unmarshal([]byte(recordsJSON), &records) != nil || json.Unmarshal([]byte(contactsJSON), &contacts) != nil {
			return
		}
		opts := contactsync.DefaultOptions()
		opts.ExternalIDPrefix = prefix
		opts.AllowMassDelete = true
		plan := diffOf(t, opts, true, records, contacts, nil)

		byID := make(map[string]sinch.Contact)
		for _, c := range contacts {
			byID[c.ID] = c
		}
		owned := func(id string) bool {
			c := byID[id]
			return c.ExternalID == "" || len(c.ExternalID) >= len(prefix) && c.ExternalID[:len(prefix)] == prefix
		}
		for _, op := range plan.Operations {
			if op.Kind != contactsync.OpCreate && !owned(op.ContactID) {
				t.Fatalf("%s writes unowned contact %s", op.Kind, op.ContactID)
			}
			if op.SourceContactID != "" && !owned(op.SourceContactID) {
				t.Fatalf("merge takes unowned contact %s", op.SourceContactID)
			}
			if op.Kind == contactsync.OpPatch && len(op.UpdateMask) == 0 {
				t.Fatalf("patch without a mask: %+v", op)
			}
			if op.Reason == "" {
				t.Fatalf("operation without a reason: %+v", op)
			}
		}
	})
}
