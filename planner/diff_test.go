package planner_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
)

func str(s string) *string { return &s }

// record builds a valid CRM row; edits adjust it.
func record(ext string, edits ...func(*crm.Record)) crm.Record {
	r := crm.Record{
		ExternalID:  ext,
		DisplayName: str("Jane Doe"),
		Email:       str("jane@example.com"),
		Phone:       str("+46732000001"),
		Language:    str("EN_US"),
		UpdatedAt:   time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for _, edit := range edits {
		edit(&r)
	}
	return r
}

// mirror is the contact Sinch holds for record(ext) once synced, as Sinch
// answers it: MSISDNs without '+'.
func mirror(id, ext string, edits ...func(*sinch.Contact)) sinch.Contact {
	c := sinch.Contact{
		ID:          id,
		ExternalID:  ext,
		DisplayName: "Jane Doe",
		Email:       "jane@example.com",
		Language:    "EN_US",
		ChannelIdentities: []sinch.ChannelIdentity{
			{Channel: "SMS", Identity: "46732000001"},
			{Channel: "WHATSAPP", Identity: "46732000001"},
		},
	}
	for _, edit := range edits {
		edit(&c)
	}
	return c
}

func opts(edits ...func(*planner.Options)) planner.Options {
	o := planner.DefaultOptions()
	for _, edit := range edits {
		edit(&o)
	}
	return o
}

// brief renders a plan compactly so that tables can state expectations.
func brief(p planner.Plan) []string {
	var out []string
	for _, op := range p.Operations {
		out = append(out, op.String())
	}
	return out
}

func TestDiff(t *testing.T) {
	tests := []struct {
		name      string
		records   []crm.Record
		contacts  []sinch.Contact
		links     map[string]planner.Link
		partial   bool // an incremental index
		opts      planner.Options
		want      []string
		unchanged int
		rejected  []string // "ext column"
		guard     bool
	}{
		{
			name:    "missing contact is created",
			records: []crm.Record{record("crm-1")},
			want:    []string{"create crm-1 missing"},
		},
		{
			name:      "mirror is unchanged despite '+'-less MSISDNs",
			records:   []crm.Record{record("crm-1")},
			contacts:  []sinch.Contact{mirror("C1", "crm-1")},
			unchanged: 1,
		},
		{
			name:     "edited field gives a one-field mask",
			records:  []crm.Record{record("crm-1", func(r *crm.Record) { r.Email = str("new@example.com") })},
			contacts: []sinch.Contact{mirror("C1", "crm-1")},
			want:     []string{"patch crm-1 C1 [email] drift"},
		},
		{
			name: "equal after normalisation: phone spelling, e-mail domain case, JSON metadata",
			records: []crm.Record{record("crm-1", func(r *crm.Record) {
				r.Phone = str("+46 73-200 00 01")
				r.Email = str("jane@EXAMPLE.com")
				r.Metadata = str(`{"b": [1, 2], "a": "x"}`)
			})},
			contacts:  []sinch.Contact{mirror("C1", "crm-1", func(c *sinch.Contact) { c.Metadata = `{"a":"x","b":[1,2]}` })},
			unchanged: 1,
		},
		{
			name: "national phone number with default region",
			records: []crm.Record{record("crm-1", func(r *crm.Record) {
				r.Phone = str("073-200 00 01")
			})},
			contacts:  []sinch.Contact{mirror("C1", "crm-1")},
			opts:      opts(func(o *planner.Options) { o.DefaultRegion = "SE" }),
			unchanged: 1,
		},
		{
			name:      "NULL columns leave Sinch's values alone",
			records:   []crm.Record{record("crm-1", func(r *crm.Record) { r.DisplayName, r.Email, r.Language = nil, nil, nil })},
			contacts:  []sinch.Contact{mirror("C1", "crm-1", func(c *sinch.Contact) { c.DisplayName, c.Email, c.Language = "Other", "x@y.z", "SV" })},
			unchanged: 1,
		},
		{
			name:     "empty string clears",
			records:  []crm.Record{record("crm-1", func(r *crm.Record) { r.Email = str("") })},
			contacts: []sinch.Contact{mirror("C1", "crm-1")},
			want:     []string{"patch crm-1 C1 [email] drift"},
		},
		{
			name:      "no name in the CRM does not fight Sinch's default or a WhatsApp name",
			records:   []crm.Record{record("crm-1", func(r *crm.Record) { r.DisplayName = str("") }), record("crm-2", func(r *crm.Record) { r.DisplayName = str(""); r.Phone = str("+46732000002") })},
			contacts:  []sinch.Contact{mirror("C1", "crm-1", func(c *sinch.Contact) { c.DisplayName = "Unknown" }), mirror("C2", "crm-2", func(c *sinch.Contact) { c.DisplayName = "Janie (WhatsApp)"; setPhone(c, "46732000002") })},
			unchanged: 2,
		},
		{
			name:     "phone change keeps identities syncd does not manage",
			records:  []crm.Record{record("crm-1", func(r *crm.Record) { r.Phone = str("+46732000009") })},
			contacts: []sinch.Contact{mirror("C1", "crm-1", withMessenger)},
			want:     []string{"patch crm-1 C1 [channel_identities] drift"},
		},
		{
			name:     "channel priority keeps unmanaged channels after the CRM's",
			records:  []crm.Record{record("crm-1", func(r *crm.Record) { r.ChannelPriority = []string{"WHATSAPP", "SMS"} })},
			contacts: []sinch.Contact{mirror("C1", "crm-1", withMessenger, func(c *sinch.Contact) { c.ChannelPriority = []string{"MESSENGER", "SMS", "WHATSAPP"} })},
			want:     []string{"patch crm-1 C1 [channel_priority] drift"},
		},
		{
			name:     "tombstone deletes",
			records:  []crm.Record{record("crm-1"), record("crm-2", func(r *crm.Record) { now := time.Now(); r.DeletedAt = &now })},
			contacts: []sinch.Contact{mirror("C1", "crm-1"), mirror("C2", "crm-2")},
			opts:     opts(func(o *planner.Options) { o.MaxDeleteFraction = 1 }),
			want:     []string{"delete crm-2 C2 tombstone"}, unchanged: 1,
		},
		{
			name:     "a row gone from the source deletes in a full run",
			records:  []crm.Record{record("crm-1")},
			contacts: []sinch.Contact{mirror("C1", "crm-1"), mirror("C2", "crm-2")},
			opts:     opts(func(o *planner.Options) { o.MaxDeleteFraction = 1 }),
			want:     []string{"delete crm-2 C2 gone"}, unchanged: 1,
		},
		{
			name:      "an incremental run cannot tell a gone row from an unread one",
			records:   []crm.Record{record("crm-1")},
			contacts:  []sinch.Contact{mirror("C1", "crm-1"), mirror("C2", "crm-2")},
			partial:   true,
			opts:      opts(func(o *planner.Options) { o.MaxDeleteFraction = 1 }),
			unchanged: 1,
		},
		{
			name:     "delete policy unlink clears external_id",
			records:  []crm.Record{record("crm-1")},
			contacts: []sinch.Contact{mirror("C1", "crm-1"), mirror("C2", "crm-2", func(c *sinch.Contact) { setPhone(c, "46732000002") })},
			opts:     opts(func(o *planner.Options) { o.MaxDeleteFraction = 1; o.DeletePolicy = planner.DeletePolicyUnlink }),
			want:     []string{"patch crm-2 C2 [external_id] unlink"}, unchanged: 1,
		},
		{
			name:     "a contact unlinked in the same run is adopted by the record that holds its phone",
			records:  []crm.Record{record("crm-1")},
			contacts: []sinch.Contact{mirror("C2", "crm-2")},
			opts:     opts(func(o *planner.Options) { o.MaxDeleteFraction = 1; o.DeletePolicy = planner.DeletePolicyUnlink }),
			want:     []string{"patch crm-1 C2 [external_id] adopt"},
		},
		{
			name:      "delete policy ignore",
			records:   []crm.Record{record("crm-1")},
			contacts:  []sinch.Contact{mirror("C1", "crm-1"), mirror("C2", "crm-2")},
			opts:      opts(func(o *planner.Options) { o.DeletePolicy = planner.DeletePolicyIgnore }),
			unchanged: 1,
		},
		{
			name:      "contacts without external_id are never patched or deleted",
			records:   []crm.Record{record("crm-1")},
			contacts:  []sinch.Contact{mirror("C1", "crm-1"), {ID: "C9", DisplayName: "Unknown", Language: "EN_US", ChannelIdentities: []sinch.ChannelIdentity{{Channel: "SMS", Identity: "4670000000"}}}},
			unchanged: 1,
		},
		{
			name:      "contacts outside the prefix are never written",
			records:   []crm.Record{record("crm-1")},
			contacts:  []sinch.Contact{mirror("C1", "crm-1"), mirror("C2", "shop-1"), mirror("C3", "shop-1")},
			opts:      opts(func(o *planner.Options) { o.ExternalIDPrefix = "crm-"; o.MaxDeleteFraction = 1 }),
			unchanged: 1,
		},
		{
			name:     "a CRM row outside the prefix is rejected",
			records:  []crm.Record{record("shop-1")},
			opts:     opts(func(o *planner.Options) { o.ExternalIDPrefix = "crm-" }),
			rejected: []string{"shop-1 external_id"},
		},
		{
			name:     "duplicates merge into the linked contact",
			records:  []crm.Record{record("crm-1")},
			contacts: []sinch.Contact{mirror("C1", "crm-1"), mirror("C2", "crm-1"), mirror("C3", "crm-1")},
			links:    map[string]planner.Link{"crm-1": {ExternalID: "crm-1", ContactID: "C2"}},
			want:     []string{"merge crm-1 C2<-C1 same-external-id", "merge crm-1 C2<-C3 same-external-id"},
		},
		{
			name:    "unlinked duplicates merge into the one with most identities, then the oldest",
			records: []crm.Record{record("crm-1")},
			contacts: []sinch.Contact{
				mirror("C1", "crm-1", func(c *sinch.Contact) { c.ChannelIdentities = c.ChannelIdentities[:1] }),
				mirror("C3", "crm-1"), mirror("C2", "crm-1"),
			},
			want: []string{"merge crm-1 C2<-C1 same-external-id", "merge crm-1 C2<-C3 same-external-id"},
		},
		{
			name:    "the patch after a merge sees the merged contact",
			records: []crm.Record{record("crm-1")},
			contacts: []sinch.Contact{
				mirror("C1", "crm-1", func(c *sinch.Contact) { c.Language = ""; c.Email = "" }),
				mirror("C2", "crm-1", func(c *sinch.Contact) {
					c.Language = "EN_US"
					c.Email = "old@example.com"
					c.ChannelIdentities = c.ChannelIdentities[:1]
				}),
			},
			// C1 has more identities; it inherits C2's language (right) and
			// e-mail (wrong), so only the e-mail is patched.
			want: []string{"merge crm-1 C1<-C2 same-external-id", "patch crm-1 C1 [email] drift"},
		},
		{
			name:     "an auto-created contact holding the phone is adopted",
			records:  []crm.Record{record("crm-1")},
			contacts: []sinch.Contact{{ID: "C7", DisplayName: "Unknown", Language: "EN_US", ChannelIdentities: []sinch.ChannelIdentity{{Channel: "WHATSAPP", Identity: "46732000001"}}}},
			want:     []string{"patch crm-1 C7 [channel_identities,display_name,email,external_id] adopt"},
		},
		{
			name:     "an unlinked contact sharing the linked contact's identity is merged",
			records:  []crm.Record{record("crm-1")},
			contacts: []sinch.Contact{mirror("C1", "crm-1"), {ID: "C7", DisplayName: "Unknown", Language: "EN_US", ChannelIdentities: []sinch.ChannelIdentity{{Channel: "WHATSAPP", Identity: "46732000001"}}}},
			want:     []string{"merge crm-1 C1<-C7 shared-identity"},
		},
		{
			name: "a contact claimed by two records is merged into neither",
			records: []crm.Record{record("crm-1"), record("crm-2", func(r *crm.Record) {
				r.ChannelIdentities = []byte(`[{"channel":"SMS","identity":"+46732000001"}]`)
				r.Phone = str("+46732000002")
			})},
			contacts: []sinch.Contact{{ID: "C7", Language: "EN_US", ChannelIdentities: []sinch.ChannelIdentity{{Channel: "SMS", Identity: "46732000001"}}}},
			want:     []string{"create crm-1 missing", "create crm-2 missing"},
		},
		{
			name: "bad rows are rejected and their contacts kept",
			records: []crm.Record{
				record("crm-1", func(r *crm.Record) { r.Phone = str("call me") }),
				record("crm-2", func(r *crm.Record) { r.Email = str("not an address") }),
				record("crm-3", func(r *crm.Record) { r.Language = str("KLINGON") }),
				record("crm-4", func(r *crm.Record) { r.Metadata = str(strings.Repeat("x", 1025)) }),
				record("crm-5", func(r *crm.Record) { r.Phone = nil }),
				record("crm-6"), record("crm-6"),
				record("crm-7", func(r *crm.Record) { r.ChannelIdentities = []byte(`[{"channel":"MESSENGER","identity":"123"}]`) }),
				record("crm-8"),
			},
			contacts:  []sinch.Contact{mirror("C1", "crm-1"), mirror("C6", "crm-6"), mirror("C8", "crm-8")},
			rejected:  []string{"crm-1 phone", "crm-2 email", "crm-3 language", "crm-4 metadata", "crm-5 phone", "crm-6 external_id", "crm-7 channel_identities"},
			unchanged: 1,
		},
		{
			name:      "an empty CRM source deletes nothing",
			contacts:  []sinch.Contact{mirror("C1", "crm-1")},
			opts:      opts(func(o *planner.Options) { o.AllowMassDelete = true }),
			unchanged: 0,
		},
		{
			name:     "mass deletes are withheld",
			records:  []crm.Record{record("crm-1")},
			contacts: []sinch.Contact{mirror("C1", "crm-1"), mirror("C2", "crm-2"), mirror("C3", "crm-3")},
			opts:     opts(func(o *planner.Options) { o.MaxDeletes = 1 }),
			want:     []string{"delete crm-2 C2 gone", "delete crm-3 C3 gone"}, unchanged: 1, guard: true,
		},
		{
			name:     "mass deletes allowed",
			records:  []crm.Record{record("crm-1")},
			contacts: []sinch.Contact{mirror("C1", "crm-1"), mirror("C2", "crm-2"), mirror("C3", "crm-3")},
			opts:     opts(func(o *planner.Options) { o.MaxDeletes = 1; o.AllowMassDelete = true }),
			want:     []string{"delete crm-2 C2 gone", "delete crm-3 C3 gone"}, unchanged: 1,
		},
		{
			name:     "fraction guard",
			records:  []crm.Record{record("crm-1")},
			contacts: []sinch.Contact{mirror("C1", "crm-1"), mirror("C2", "crm-2")},
			want:     []string{"delete crm-2 C2 gone"}, unchanged: 1, guard: true,
		},
		{
			name: "a linked contact whose external_id was set to another record's in Sinch gets it back, and is never merged",
			records: []crm.Record{record("crm-1"),
				record("crm-2", func(r *crm.Record) { r.Phone = str("+46732000002") })},
			contacts: []sinch.Contact{
				mirror("C1", "crm-2"), // crm-1's contact, hand-edited
				mirror("C2", "crm-2", func(c *sinch.Contact) { setPhone(c, "46732000002") }),
			},
			links: map[string]planner.Link{
				"crm-1": {ExternalID: "crm-1", ContactID: "C1"},
				"crm-2": {ExternalID: "crm-2", ContactID: "C2"},
			},
			want:      []string{"patch crm-1 C1 [external_id] restore"},
			unchanged: 1,
		},
		{
			name: "two linked contacts whose external_ids were swapped in Sinch: one cleared first, so none is ever carried twice",
			records: []crm.Record{record("crm-1"),
				record("crm-2", func(r *crm.Record) { r.Phone = str("+46732000002") })},
			contacts: []sinch.Contact{
				mirror("C1", "crm-2"),
				mirror("C2", "crm-1", func(c *sinch.Contact) { setPhone(c, "46732000002") }),
			},
			links: map[string]planner.Link{
				"crm-1": {ExternalID: "crm-1", ContactID: "C1"},
				"crm-2": {ExternalID: "crm-2", ContactID: "C2"},
			},
			want: []string{"patch crm-1 C1 [external_id] restore", "patch crm-1 C1 [external_id] restore", "patch crm-2 C2 [external_id] restore"},
		},
		{
			name:    "a gone record's contact keyed by hand to a record renamed from another is re-keyed for its own, and the other keeps its contact",
			records: []crm.Record{record("crm-0b"), record("crm-1b", func(r *crm.Record) { r.Phone = str("+46732000002") })},
			contacts: []sinch.Contact{
				mirror("C0", "crm-0"),
				mirror("C1", "crm-0b", func(c *sinch.Contact) { setPhone(c, "46732000002") }), // crm-1's, keyed by hand
			},
			links: map[string]planner.Link{
				"crm-0": {ExternalID: "crm-0", ContactID: "C0"},
				"crm-1": {ExternalID: "crm-1", ContactID: "C1"},
			},
			want: []string{"patch crm-0b C0 [external_id] rekey", "patch crm-1b C1 [external_id] rekey"},
		},
		{
			name:      "a linked contact whose external_id was cleared in Sinch gets it back",
			records:   []crm.Record{record("crm-1")},
			contacts:  []sinch.Contact{mirror("C1", "")},
			links:     map[string]planner.Link{"crm-1": {ExternalID: "crm-1", ContactID: "C1"}},
			want:      []string{"patch crm-1 C1 [external_id] restore"},
			unchanged: 0,
		},
		{
			name:     "a linked contact moved outside the prefix is left alone, and no duplicate is created",
			records:  []crm.Record{record("crm-1")},
			contacts: []sinch.Contact{mirror("C1", "shop-9")},
			links:    map[string]planner.Link{"crm-1": {ExternalID: "crm-1", ContactID: "C1"}},
			opts:     opts(func(o *planner.Options) { o.ExternalIDPrefix = "crm-" }),
		},
		{
			name:     "a renamed record re-keys its old contact instead of deleting and creating",
			records:  []crm.Record{record("crm-1b")},
			contacts: []sinch.Contact{mirror("C1", "crm-1")},
			links:    map[string]planner.Link{"crm-1": {ExternalID: "crm-1", ContactID: "C1"}},
			want:     []string{"patch crm-1b C1 [external_id] rekey"},
		},
		{
			name:    "a contact left by a gone record is deleted, not merged, when the record holding its phone has a contact",
			records: []crm.Record{record("crm-1")},
			contacts: []sinch.Contact{mirror("C1", "crm-1"), mirror("C2", "crm-2"),
				mirror("C3", "crm-3", func(c *sinch.Contact) { setPhone(c, "46732000003") })},
			opts:      opts(func(o *planner.Options) { o.MaxDeleteFraction = 1 }),
			want:      []string{"delete crm-2 C2 gone", "delete crm-3 C3 gone"},
			unchanged: 1,
		},
		{
			name: "a full run leaves alone a contact holding identities of two records",
			records: []crm.Record{record("crm-1"),
				record("crm-2", func(r *crm.Record) { r.Phone = str("+46732000002") })},
			contacts: []sinch.Contact{
				mirror("C2", "crm-2", func(c *sinch.Contact) { setPhone(c, "46732000002") }),
				{ID: "U", Language: "EN_US", ChannelIdentities: []sinch.ChannelIdentity{{Channel: "SMS", Identity: "46732000001"}, {Channel: "WHATSAPP", Identity: "46732000002"}}},
			},
			links:     map[string]planner.Link{"crm-2": {ExternalID: "crm-2", ContactID: "C2"}},
			want:      []string{"create crm-1 missing"},
			unchanged: 1,
		},
		{
			name:    "a partial run, whose scope holds every record sharing the identity, adopts as a full run does",
			records: []crm.Record{record("crm-1")},
			contacts: []sinch.Contact{
				{ID: "U", Language: "EN_US", ChannelIdentities: []sinch.ChannelIdentity{{Channel: "SMS", Identity: "46732000001"}, {Channel: "WHATSAPP", Identity: "46732000002"}}},
			},
			partial: true,
			want:    []string{"patch crm-1 U [channel_identities,display_name,email,external_id] adopt"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.opts
			if o.PhoneChannels == nil {
				o = opts()
			}
			p := diffOf(t, o, !tt.partial, tt.records, tt.contacts, tt.links)
			if got := brief(p); !slices.Equal(got, tt.want) {
				t.Errorf("operations:\n got %q\nwant %q", got, tt.want)
			}
			if p.Unchanged != tt.unchanged {
				t.Errorf("unchanged = %d, want %d", p.Unchanged, tt.unchanged)
			}
			var rejected []string
			for _, r := range p.Rejected {
				rejected = append(rejected, r.ExternalID+" "+r.Column)
			}
			if !slices.Equal(rejected, tt.rejected) {
				t.Errorf("rejected:\n got %q\nwant %q", rejected, tt.rejected)
			}
			if (p.DeleteGuard != "") != tt.guard {
				t.Errorf("delete guard = %q, want tripped=%v", p.DeleteGuard, tt.guard)
			}
			for _, op := range p.Operations {
				if op.Reason == "" {
					t.Errorf("%s %s has no reason", op.Kind, op.ExternalID)
				}
			}
		})
	}
}

func setPhone(c *sinch.Contact, msisdn string) {
	for i := range c.ChannelIdentities {
		c.ChannelIdentities[i].Identity = msisdn
	}
}

func withMessenger(c *sinch.Contact) {
	c.ChannelIdentities = append(c.ChannelIdentities, sinch.ChannelIdentity{Channel: "MESSENGER", Identity: "7968425018576406", AppID: "APP1"})
}

func TestDiffPatchBodies(t *testing.T) {
	t.Run("identities keep unmanaged ones after the managed", func(t *testing.T) {
		p := diffOf(t, opts(), true, []crm.Record{record("crm-1", func(r *crm.Record) { r.Phone = str("+46732000009") })}, []sinch.Contact{mirror("C1", "crm-1", withMessenger)}, nil)
		got := p.Operations[0].Contact.ChannelIdentities
		want := []sinch.ChannelIdentity{
			{Channel: "SMS", Identity: "+46732000009"},
			{Channel: "WHATSAPP", Identity: "+46732000009"},
			{Channel: "MESSENGER", Identity: "7968425018576406", AppID: "APP1"},
		}
		if !slices.Equal(got, want) {
			t.Errorf("identities = %v, want %v", got, want)
		}
	})
	t.Run("priority", func(t *testing.T) {
		p := diffOf(t, opts(), true, []crm.Record{record("crm-1", func(r *crm.Record) { r.ChannelPriority = []string{"WHATSAPP", "SMS"} })}, []sinch.Contact{mirror("C1", "crm-1", withMessenger, func(c *sinch.Contact) { c.ChannelPriority = []string{"MESSENGER", "SMS", "WHATSAPP"} })}, nil)
		if got, want := p.Operations[0].Contact.ChannelPriority, []string{"WHATSAPP", "SMS", "MESSENGER"}; !slices.Equal(got, want) {
			t.Errorf("priority = %v, want %v", got, want)
		}
	})
	t.Run("create sends the default language and E.164 identities", func(t *testing.T) {
		p := diffOf(t, opts(func(o *planner.Options) { o.DefaultLanguage = "SV" }), true, []crm.Record{record("crm-1", func(r *crm.Record) { r.Language = nil })}, nil, nil)
		body := p.Operations[0].Contact
		if body.Language != "SV" || body.ExternalID != "crm-1" || len(body.ChannelIdentities) != 2 || body.ChannelIdentities[0].Identity != "+46732000001" {
			t.Errorf("create body = %+v", body)
		}
	})
	t.Run("reasons name old and new values", func(t *testing.T) {
		p := diffOf(t, opts(), true, []crm.Record{record("crm-1", func(r *crm.Record) { r.Email = str("new@example.com") })}, []sinch.Contact{mirror("C1", "crm-1")}, nil)
		op := p.Operations[0]
		if got := op.Explain(false); !strings.Contains(got, `email "jane@example.com" → "new@example.com"`) {
			t.Errorf("Explain = %q", got)
		}
		if got := op.Explain(true); strings.Contains(got, "example.com") {
			t.Errorf("redacted Explain leaks a value: %q", got)
		}
	})
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*planner.Options)
		want string // substring of the error; "" for valid
	}{
		{"defaults", func(*planner.Options) {}, ""},
		{"region", func(o *planner.Options) { o.DefaultRegion = "SE" }, ""},
		{"unknown region", func(o *planner.Options) { o.DefaultRegion = "XX" }, "sync.default_region"},
		{"lower-case region", func(o *planner.Options) { o.DefaultRegion = "se" }, "sync.default_region"},
		{"phone channel", func(o *planner.Options) { o.PhoneChannels = []string{"MESSENGER"} }, "sync.phone_channels"},
		{"language", func(o *planner.Options) { o.DefaultLanguage = "XX" }, "sync.default_language"},
		{"policy", func(o *planner.Options) { o.DeletePolicy = "purge" }, "sync.delete_policy"},
		{"fraction", func(o *planner.Options) { o.MaxDeleteFraction = 2 }, "sync.max_delete_fraction"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := opts(tt.edit).Validate()
			if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}

// jsonb metadata reads back spaced; Sinch gets, and measures, the compact
// form, so 1,024 characters of compact JSON are accepted.
func TestMetadataIsMeasuredCompact(t *testing.T) {
	long := strings.Repeat("x", sinch.MaxMetadataLength-len(`{"k":""}`))
	tests := []struct {
		name, metadata string
		want           string // the metadata sent; "" for a rejected row
	}{
		{"spaced jsonb at the limit", `{"k": "` + long + `"}`, `{"k":"` + long + `"}`},
		{"one over", `{"k": "` + long + `x"}`, ""},
		{"text is measured as written", strings.Repeat("y", sinch.MaxMetadataLength), strings.Repeat("y", sinch.MaxMetadataLength)},
		{"order and numbers kept", `{ "b" : 1.50, "a" : [1, 2] }`, `{"b":1.50,"a":[1,2]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := diffOf(t, opts(), true, []crm.Record{record("crm-1", func(r *crm.Record) { r.Metadata = str(tt.metadata) })}, nil, nil)
			if tt.want == "" {
				if len(p.Rejected) != 1 || p.Rejected[0].Column != "metadata" {
					t.Fatalf("plan %+v, want the row rejected for its metadata", p)
				}
				return
			}
			if len(p.Operations) != 1 || p.Operations[0].Contact.Metadata != tt.want {
				t.Fatalf("plan %+v, want a create sending %q", p, tt.want)
			}
		})
	}
}

// Two CRM rows with one phone number become two contacts holding one
// identity, which Sinch reports as a duplication: a full run says so.
func TestSharedPhoneIsNoted(t *testing.T) {
	records := []crm.Record{record("crm-1"), record("crm-2", func(r *crm.Record) { r.Phone = str("+46 73 200 00 01") }), record("crm-3", func(r *crm.Record) { r.Phone = str("+46732000003") })}
	p := diffOf(t, opts(), true, records, nil, nil)
	var shared []string
	for _, n := range p.Notes {
		if strings.Contains(n, "share an identity") {
			shared = append(shared, n)
		}
	}
	if len(shared) != 1 || !strings.Contains(shared[0], "crm-1 and crm-2") {
		t.Errorf("notes %q, want one about crm-1 and crm-2", p.Notes)
	}
	if got := brief(p); len(got) != 3 {
		t.Errorf("operations %q, want three creates", got)
	}
}
