package sync_test

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/sinch"
	contactsync "github.com/syncd/syncd/sync"
)

// diffOf diffs both sides held whole, twice: as SnapshotOf holds them
// (every contact in full) and as a full run does (the links first, so that
// linked contacts in sync become seen bits, and the contacts a plan asks for
// added afterwards). The two plans must be the same.
func diffOf(tb testing.TB, opts contactsync.Options, complete bool, records []crm.Record, contacts []sinch.Contact, links map[string]crm.Link) contactsync.Plan {
	tb.Helper()
	linkList := slices.Collect(maps.Values(links))
	slices.SortFunc(linkList, func(a, b crm.Link) int { return strings.Compare(a.ExternalID, b.ExternalID) })
	plan := diffBoth(tb, opts, complete, records, contacts, linkList)
	// Links as a run leaves them (the record's hash) make linked contacts
	// in sync eligible as seen bits: the plans must agree there too.
	fresh := slices.Clone(linkList)
	hashes := make(map[string]string)
	for _, r := range records {
		if want, rej := contactsync.Normalize(r, opts); rej == nil {
			hashes[r.ExternalID] = want.Hash
		}
	}
	for i := range fresh {
		fresh[i].ContentHash = hashes[fresh[i].ExternalID]
	}
	diffBoth(tb, opts, complete, records, contacts, fresh)
	return plan
}

func diffBoth(tb testing.TB, opts contactsync.Options, complete bool, records []crm.Record, contacts []sinch.Contact, links []crm.Link) contactsync.Plan {
	tb.Helper()
	whole := contactsync.Diff(contactsync.SnapshotOf(opts, crm.Source{Relation: "crm_contacts"}, complete, records, contacts, links))

	lean := contactsync.NewSnapshot(opts, crm.Source{Relation: "crm_contacts"}, complete)
	lean.AddRecords(records)
	lean.AddLinks(links...)
	lean.AddContacts(contacts)
	plan := contactsync.Diff(lean)
	for round := 0; len(plan.Fetch) > 0; round++ {
		if round > 1 {
			tb.Fatalf("the diff still asks for %v after %d rounds", plan.Fetch, round)
		}
		var got []sinch.Contact
		for _, id := range plan.Fetch {
			for _, c := range contacts {
				if c.ID == id {
					got = append(got, c)
				}
			}
		}
		lean.AddContacts(got)
		plan = contactsync.Diff(lean)
	}
	if !reflect.DeepEqual(whole, plan) {
		tb.Fatalf("the plan of contacts held as seen differs from the plan of contacts held whole:\n seen  %+v\n whole %+v", plan, whole)
	}
	return whole
}
