package planner_test

import (
	"encoding/json"
	"testing"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
)

// FuzzNormalizePhone checks that whatever the CRM holds, parsing never
// panics and an accepted number is a fixed point: E.164 parses to itself.
func FuzzNormalizePhone(f *testing.F) {
	for _, s := range []string{"+46732000001", "+1 (415) 555-0100", "073-200 00 01", "", "+", "abc", "+4673200000199999999", "00 46 73 200"} {
		f.Add(s, "SE")
		f.Add(s, "")
	}
	f.Fuzz(func(t *testing.T, raw, region string) {
		e164, err := planner.NormalizePhone(raw, region)
		if err != nil {
			return
		}
		again, err := planner.NormalizePhone(e164, "")
		if err != nil || again != e164 {
			t.Fatalf("NormalizePhone(%q) = %q, which normalises to %q, %v", raw, e164, again, err)
		}
	})
}

// FuzzDiff feeds the diff arbitrary CRM rows, Sinch contacts and stored
// links (as JSON) and checks the plan's invariants: no panic, no write to a
// contact syncd does not own, every patch names its fields, and nothing
// gives an external_id to a contact while another contact keeps carrying it
// (deleted, merged away or re-keyed by the same plan).
func FuzzDiff(f *testing.F) {
	f.Add(`[{"ExternalID":"crm-1","Phone":"+46732000001","Email":"a@b.c"}]`,
		`[{"id":"C1","external_id":"crm-1","channel_identities":[{"channel":"SMS","identity":"46732000001"}]}]`, `{}`, "crm-")
	f.Add(`[{"ExternalID":"crm-1","Phone":"+46732000001"},{"ExternalID":"crm-2","Phone":"+46732000001"}]`,
		`[{"id":"C1","channel_identities":[{"channel":"SMS","identity":"46732000001"}]},{"id":"C2","external_id":"x"}]`, `{}`, "")
	// A swap, and a gone record's contact keyed by hand to a live record.
	f.Add(`[{"ExternalID":"crm-1","Phone":"+46732000001"},{"ExternalID":"crm-2","Phone":"+46732000002"},{"ExternalID":"crm-3","Phone":"+46732000003"}]`,
		`[{"id":"C1","external_id":"crm-2","channel_identities":[{"channel":"SMS","identity":"46732000001"}]},{"id":"C2","external_id":"crm-1","channel_identities":[{"channel":"SMS","identity":"46732000002"}]},{"id":"C9","external_id":"crm-3","channel_identities":[{"channel":"SMS","identity":"46732000009"}]}]`,
		`{"crm-1":{"ExternalID":"crm-1","ContactID":"C1"},"crm-2":{"ExternalID":"crm-2","ContactID":"C2"},"crm-9":{"ExternalID":"crm-9","ContactID":"C9"}}`, "crm-")
	f.Fuzz(func(t *testing.T, recordsJSON, contactsJSON, linksJSON, prefix string) {
		var records []crm.Record
		var contacts []sinch.Contact
		var links map[string]planner.Link
		if json.Unmarshal([]byte(recordsJSON), &records) != nil || json.Unmarshal([]byte(contactsJSON), &contacts) != nil ||
			json.Unmarshal([]byte(linksJSON), &links) != nil {
			return
		}
		for ext, l := range links {
			l.ExternalID = ext
			links[ext] = l
		}
		opts := planner.DefaultOptions()
		opts.ExternalIDPrefix = prefix
		opts.AllowMassDelete = true
		p := diffOf(t, opts, true, records, contacts, links)

		byID := make(map[string]sinch.Contact)
		carriers := make(map[string][]string)
		for _, c := range contacts {
			if _, dup := byID[c.ID]; dup || c.ID == "" {
				return // Sinch's ids are unique
			}
			byID[c.ID] = c
			carriers[c.ExternalID] = append(carriers[c.ExternalID], c.ID)
		}
		owned := func(id string) bool {
			c := byID[id]
			return c.ExternalID == "" || len(c.ExternalID) >= len(prefix) && c.ExternalID[:len(prefix)] == prefix
		}
		freed := make(map[string]bool)
		for _, op := range p.Operations {
			switch {
			case op.Kind == planner.OpMerge:
				freed[op.SourceContactID] = true
			case op.Kind == planner.OpDelete:
				freed[op.ContactID] = true
			case op.Kind == planner.OpPatch:
				for _, c := range op.Changes {
					if c.Field == sinch.FieldExternalID && c.Old != c.New {
						freed[op.ContactID] = true
					}
				}
			}
		}
		for _, op := range p.Operations {
			if op.Kind != planner.OpCreate && !owned(op.ContactID) {
				t.Fatalf("%s writes unowned contact %s", op.Kind, op.ContactID)
			}
			if op.SourceContactID != "" && !owned(op.SourceContactID) {
				t.Fatalf("merge takes unowned contact %s", op.SourceContactID)
			}
			if op.Kind == planner.OpPatch && len(op.UpdateMask) == 0 {
				t.Fatalf("patch without a mask: %+v", op)
			}
			if op.Reason == "" {
				t.Fatalf("operation without a reason: %+v", op)
			}
			sets := op.Kind == planner.OpCreate
			for _, c := range op.Changes {
				sets = sets || c.Field == sinch.FieldExternalID && c.New == op.ExternalID && c.Old != c.New
			}
			if !sets || op.ExternalID == "" {
				continue
			}
			for _, id := range carriers[op.ExternalID] {
				if id != op.ContactID && !freed[id] {
					t.Fatalf("%s gives %s to a contact while %s keeps carrying it: %v", op.Kind, op.ExternalID, id, p.Operations)
				}
			}
		}
	})
}
