package planner_test

import (
	"os"
	"time"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
)

// Diff is a pure function: given the CRM rows and the Sinch contacts it
// plans the operations that align Sinch with the CRM, each with its reason.
func ExampleDiff() {
	name, phone := "Ada Lovelace", "+46 70 123 45 67"
	newName, newPhone := "Grace Hopper", "+46701112233"
	records := []crm.Record{
		{ExternalID: "crm-1", DisplayName: &name, Phone: &phone, UpdatedAt: time.Now()},
		{ExternalID: "crm-2", DisplayName: &newName, Phone: &newPhone, UpdatedAt: time.Now()},
	}
	contacts := []sinch.Contact{{
		ID: "01HZX0", ExternalID: "crm-1", DisplayName: "Ada", Language: "EN_US",
		// Sinch answers MSISDNs without the '+'; they compare equal.
		ChannelIdentities: []sinch.ChannelIdentity{{Channel: "SMS", Identity: "46701234567"}, {Channel: "WHATSAPP", Identity: "46701234567"}},
	}}
	p := planner.Diff(planner.IndexOf(planner.DefaultOptions(), crm.Source{Relation: "crm_contacts"}, true, records, contacts, nil))
	_ = planner.WriteText(os.Stdout, p, planner.ReportOptions{})
	// Output:
	// Create (1)
	//   + crm-2  (new)  no Sinch contact carries this external_id: sends display_name "Grace Hopper", channel_identities "SMS +46701112233, WHATSAPP +46701112233", language "EN_US"
	//
	// Patch (1)
	//   ~ crm-1  01HZX0  [display_name] the contact differs from the CRM record: display_name "Ada" → "Ada Lovelace"
	//
	// Plan: 1 to create, 1 to patch, 0 to merge, 0 to delete, 0 unchanged, 0 rejected.
}
