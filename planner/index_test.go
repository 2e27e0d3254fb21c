package planner_test

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
)

// diffOf diffs both sides held whole, twice: as IndexOf holds them
// (every contact in full) and as a full run does (the links first, so that
// linked contacts in sync become seen bits, and the contacts a plan asks for
// added afterwards). The two plans must be the same.
func diffOf(tb testing.TB, opts planner.Options, complete bool, records []crm.Record, contacts []sinch.Contact, links map[string]planner.Link) planner.Plan {
	tb.Helper()
	linkList := slices.Collect(maps.Values(links))
	slices.SortFunc(linkList, func(a, b planner.Link) int { return strings.Compare(a.ExternalID, b.ExternalID) })
	p := diffBoth(tb, opts, complete, records, contacts, linkList)
	// Links as a run leaves them (the record's hash) make linked contacts
	// in sync eligible as seen bits: the plans must agree there too.
	fresh := slices.Clone(linkList)
	hashes := make(map[string]string)
	for _, r := range records {
		if want, rej := planner.Normalize(r, opts); rej == nil {
			hashes[r.ExternalID] = want.Hash
		}
	}
	for i := range fresh {
		fresh[i].ContentHash = hashes[fresh[i].ExternalID]
	}
	diffBoth(tb, opts, complete, records, contacts, fresh)
	return p
}

func diffBoth(tb testing.TB, opts planner.Options, complete bool, records []crm.Record, contacts []sinch.Contact, links []planner.Link) planner.Plan {
	tb.Helper()
	whole := planner.Diff(planner.IndexOf(opts, crm.Source{Relation: "crm_contacts"}, complete, records, contacts, links))

	lean := planner.NewIndex(opts, crm.Source{Relation: "crm_contacts"}, complete)
	lean.AddRecords(records)
	lean.AddLinks(links...)
	lean.AddContacts(contacts)
	p := planner.Diff(lean)
	for round := 0; len(p.Fetch) > 0; round++ {
		if round > 1 {
			tb.Fatalf("the diff still asks for %v after %d rounds", p.Fetch, round)
		}
		var got []sinch.Contact
		for _, id := range p.Fetch {
			for _, c := range contacts {
				if c.ID == id {
					got = append(got, c)
				}
			}
		}
		lean.AddContacts(got)
		p = planner.Diff(lean)
	}
	if !reflect.DeepEqual(whole, p) {
		tb.Fatalf("the plan of contacts held as seen differs from the plan of contacts held whole:\n seen  %+v\n whole %+v", p, whole)
	}
	return whole
}

// TestSeenContactsRebuiltOrRead covers the linked contacts in sync that a
// full run holds as seen bits and a merge then needs: one that is exactly
// what syncd would have created is rebuilt from its record, with no read;
// any other is asked for in Fetch. Either way the plan is that of the
// contacts held whole, whatever the spelling of the contact ids.
func TestSeenContactsRebuiltOrRead(t *testing.T) {
	const ulidID, dupID = "01JB0000000000000000000001", "01JB0000000000000000000002"
	for _, tc := range []struct {
		name      string
		id, dup   string
		edit      func(*sinch.Contact)
		record    func(*crm.Record)
		wantFetch bool
	}{
		{name: "created by syncd", id: ulidID, dup: dupID, edit: func(*sinch.Contact) {}},
		{name: "empty priority as Sinch answers it", id: ulidID, dup: dupID, edit: func(c *sinch.Contact) { c.ChannelPriority = []string{} }},
		{name: "an identity syncd does not manage", id: ulidID, dup: dupID, wantFetch: true, edit: func(c *sinch.Contact) {
			c.ChannelIdentities = append(c.ChannelIdentities, sinch.ChannelIdentity{Channel: "MESSENGER", Identity: "7968425018576406", AppID: "01EB7TQRD1J1AMPPC4KA4QRZNB"})
		}},
		{name: "a name the record has no opinion on", id: ulidID, dup: dupID, wantFetch: true, edit: func(*sinch.Contact) {},
			record: func(r *crm.Record) { r.DisplayName = nil }},
		{name: "no name, as Sinch shows it", id: ulidID, dup: dupID, edit: func(c *sinch.Contact) { c.DisplayName = "Unknown" },
			record: func(r *crm.Record) { r.DisplayName = nil }},
		{name: "ids that are not ULIDs", id: "contact-1", dup: "contact-2", edit: func(*sinch.Contact) {}},
		{name: "a ULID in lower case", id: strings.ToLower(ulidID), dup: dupID, edit: func(*sinch.Contact) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := planner.DefaultOptions()
			rec := record("crm-1")
			if tc.record != nil {
				tc.record(&rec)
			}
			want, rej := planner.Normalize(rec, o)
			if rej != nil {
				t.Fatal(rej)
			}
			linked := mirror(tc.id, "crm-1", tc.edit)
			dup := mirror(tc.dup, "crm-1", func(c *sinch.Contact) { c.ChannelIdentities = c.ChannelIdentities[:1] })
			contacts := []sinch.Contact{linked, dup}
			links := []planner.Link{{ExternalID: "crm-1", ContactID: tc.id, ContentHash: want.Hash}}

			wholeSnap := planner.IndexOf(o, crm.Source{Relation: "crm_contacts"}, true, []crm.Record{rec}, contacts, links)
			whole := planner.Diff(wholeSnap)
			lean := planner.NewIndex(o, crm.Source{Relation: "crm_contacts"}, true)
			lean.AddRecords([]crm.Record{rec})
			lean.AddLinks(links...)
			lean.AddContacts(contacts)
			p := planner.Diff(lean)
			if got := len(p.Fetch) > 0; got != tc.wantFetch {
				t.Fatalf("Fetch = %v, want a read: %v", p.Fetch, tc.wantFetch)
			}
			if tc.wantFetch {
				if !slices.Equal(p.Fetch, []string{tc.id}) {
					t.Fatalf("Fetch = %v, want [%s]", p.Fetch, tc.id)
				}
				lean.AddContacts([]sinch.Contact{linked})
				p = planner.Diff(lean)
			}
			if !reflect.DeepEqual(whole, p) {
				t.Fatalf("the plan of the contact held as seen differs from the plan of it held whole:\n seen  %+v\n whole %+v", p, whole)
			}
			if got := brief(p); len(got) == 0 || got[0] != "merge crm-1 "+tc.id+"<-"+tc.dup+" same-external-id" {
				t.Fatalf("plan = %v, want the duplicate merged into the linked contact first", got)
			}
			// A plan saved for review holds the contacts it assumed, the
			// rebuilt one among them.
			at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
			saved, wholeSaved := planner.Save(p, lean, "p", at), planner.Save(whole, wholeSnap, "p", at)
			if !reflect.DeepEqual(saved, wholeSaved) {
				t.Fatalf("saved plan of the contact held as seen:\n %+v\nof it held whole:\n %+v", saved, wholeSaved)
			}
			if len(saved.Operations[0].Before) != 2 {
				t.Fatalf("the saved merge assumes %+v, want both contacts", saved.Operations[0].Before)
			}
		})
	}
}
