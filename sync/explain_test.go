package sync_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
	contactsync "github.com/syncd/syncd/sync"
)

// Redacted leaves no value anywhere in an explanation, whichever part holds
// it, and keeps every id, field name, reason word and status.
func TestExplanationRedacted(t *testing.T) {
	v := func(s string) *string { return &s }
	contact := func(id, ext string) sinch.Contact {
		return sinch.Contact{ID: id, ExternalID: ext, DisplayName: "SECRET name", Email: "SECRET@example.com", Language: "SECRET_LANG",
			Metadata: `{"SECRET": 1}`, ChannelIdentities: []sinch.ChannelIdentity{{Channel: "SMS", Identity: "SECRET-phone", AppID: "app-1"}}}
	}
	removed, err := json.Marshal([]sinch.Contact{contact("C-gone", "crm-1")})
	if err != nil {
		t.Fatal(err)
	}
	sent := contact("", "crm-1")
	ex := contactsync.Explanation{
		Query: "crm-1", ExternalID: "crm-1",
		Record: &contactsync.RecordView{ExternalID: "crm-1", DisplayName: v("SECRET name"), Email: v("SECRET@example.com"),
			Phone: v("SECRET-phone"), ChannelIdentities: v(`[{"channel":"SMS","identity":"SECRET"}]`), ChannelPriority: []string{"SMS"},
			Language: v("SECRET_LANG"), Metadata: v("SECRET meta")},
		Normalized: &contactsync.NormalizedView{DisplayName: v("SECRET name"), Email: v("SECRET@example.com"), Language: v("SECRET_LANG"),
			Metadata: v("SECRET meta"), ChannelIdentities: sent.ChannelIdentities, ManagedChannels: []string{"SMS"}, Hash: "h1"},
		Rejection: &planner.Rejection{ExternalID: "crm-1", Column: "phone", Reason: `"SECRET-phone" is not a phone number: it contains letters`},
		Link:      &contactsync.LinkView{ContactID: "C1"},
		Contacts:  []sinch.Contact{contact("C1", "crm-1")},
		Operations: []planner.Operation{{Kind: planner.OpCreate, ExternalID: "crm-1", Reason: "no Sinch contact carries this external_id",
			Rule: "missing", Contact: &sent},
			{Kind: planner.OpPatch, ExternalID: "crm-1", ContactID: "C1", UpdateMask: []string{"email"}, Reason: "the contact differs",
				Rule: "drift", Changes: []planner.Change{{Field: "email", Old: "SECRET-old", New: "SECRET-new"}}, Contact: &sent}},
		Verdict: `the row is rejected: phone: "SECRET-phone" is not a phone number`,
		Timeline: []contactsync.Event{
			{Kind: "patch", ContactID: "C1", UpdateMask: []string{"email"}, Reason: "drift: the contact differs: email", Status: "done",
				HTTPStatus: 200, Changes: []planner.Change{{Field: "email", Old: "SECRET-old", New: "SECRET-new"}}},
			{Kind: "delete", ContactID: "C-gone", Reason: "tombstone: the CRM record is deleted", Status: "failed",
				Error: `sinch: 400: "SECRET-phone" is invalid`, Contacts: removed,
				Changes: []planner.Change{{Field: "display_name", Old: "SECRET name"}}},
		},
	}
	red, err := ex.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(red)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "SECRET") {
		t.Errorf("Redacted leaves a value:\n%s", out)
	}
	for _, keep := range []string{`"crm-1"`, `"C1"`, `"C-gone"`, `"app-1"`, `"SMS"`, `"email"`, `"display_name"`, `"phone"`, `"h1"`,
		"is not a phone number: it contains letters", "no Sinch contact carries this external_id", "drift: the contact differs: email",
		`"done"`, `"failed"`, "is invalid", `"missing"`, `"(redacted)"`} {
		if !strings.Contains(string(out), keep) {
			t.Errorf("Redacted lost %s:\n%s", keep, out)
		}
	}
	for _, e := range red.Timeline {
		if d := e.Describe(true); strings.Contains(d, "SECRET") || !strings.Contains(d, e.Changes[0].Field) {
			t.Errorf("Describe(true) = %q", d)
		}
	}
	// The original is left as it was: Redacted copies.
	if orig, _ := json.Marshal(ex); !strings.Contains(string(orig), "SECRET-new") || *ex.Record.Email != "SECRET@example.com" ||
		ex.Operations[0].Contact.Email != "SECRET@example.com" {
		t.Errorf("Redacted changed its receiver")
	}
}

// Describe shows each kind's fields as the diff shows an operation's.
func TestEventDescribe(t *testing.T) {
	tests := []struct {
		kind    planner.OpKind
		changes []planner.Change
		want    string
	}{
		{"create", []planner.Change{{Field: "display_name", New: "Ann"}, {Field: "email", New: "a@x"}}, `sent: display_name "Ann", email "a@x"`},
		{"patch", []planner.Change{{Field: "display_name", Old: "Bo", New: "Bob"}}, `display_name "Bo" → "Bob"`},
		{"delete", []planner.Change{{Field: "email", Old: "c@x"}}, `removed the contact: email "c@x"`},
		{"merge", []planner.Change{{Field: "email", Old: "d@x"}}, `merged the source away: email "d@x"`},
		{"reject", nil, ""},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			if got := (contactsync.Event{Kind: tt.kind, Changes: tt.changes}).Describe(false); got != tt.want {
				t.Errorf("Describe = %q, want %q", got, tt.want)
			}
		})
	}
}
