package planner

import (
	"testing"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/sinch"
)

// TestIsMirrorIsSameContactAsMirrorOf: the check a full run makes of every
// listed linked contact says what comparing it with the rebuilt contact
// would, for contacts that are and are not the mirror of their record.
func TestIsMirrorIsSameContactAsMirrorOf(t *testing.T) {
	s := func(v string) *string { return &v }
	rec := crm.Record{ExternalID: "crm-1", DisplayName: s("Jane Doe"), Email: s("jane@example.com"), Phone: s("+46732000001"), Language: s("SV")}
	bare := crm.Record{ExternalID: "crm-1", Phone: s("+46732000001"), ChannelPriority: []string{"WHATSAPP"}}
	for _, o := range []Options{DefaultOptions(), func() Options { o := DefaultOptions(); o.DefaultLanguage = ""; return o }()} {
		for _, r := range []crm.Record{rec, bare} {
			want, rej := Normalize(r, o)
			if rej != nil {
				t.Fatal(rej)
			}
			m := mirrorOf(&want, "01JB0000000000000000000001", o)
			for name, edit := range map[string]func(*sinch.Contact){
				"as rebuilt":        func(*sinch.Contact) {},
				"empty priority":    func(c *sinch.Contact) { c.ChannelPriority = []string{} },
				"another priority":  func(c *sinch.Contact) { c.ChannelPriority = []string{"SMS"} },
				"phone with a plus": func(c *sinch.Contact) { c.ChannelIdentities[0].Identity = "+46732000001" },
				"identities swapped": func(c *sinch.Contact) {
					c.ChannelIdentities[0], c.ChannelIdentities[1] = c.ChannelIdentities[1], c.ChannelIdentities[0]
				},
				"an unmanaged identity": func(c *sinch.Contact) {
					c.ChannelIdentities = append(c.ChannelIdentities, sinch.ChannelIdentity{Channel: "MESSENGER", Identity: "1", AppID: "a"})
				},
				"no name":       func(c *sinch.Contact) { c.DisplayName = "" },
				"other name":    func(c *sinch.Contact) { c.DisplayName = "J. Doe" },
				"no language":   func(c *sinch.Contact) { c.Language = "" },
				"unspecified":   func(c *sinch.Contact) { c.Language = sinch.LanguageUnspecified },
				"other e-mail":  func(c *sinch.Contact) { c.Email = "j@example.com" },
				"metadata":      func(c *sinch.Contact) { c.Metadata = "{}" },
				"other ext id":  func(c *sinch.Contact) { c.ExternalID = "crm-2" },
				"an app id set": func(c *sinch.Contact) { c.ChannelIdentities[0].AppID = "a" },
			} {
				c := m
				c.ChannelIdentities = append([]sinch.ChannelIdentity(nil), m.ChannelIdentities...)
				c.ChannelPriority = append([]string(nil), m.ChannelPriority...)
				edit(&c)
				got, same := isMirror(c, &want, o), SameContact(c, mirrorOf(&want, c.ID, o))
				if got != same || name == "as rebuilt" && !got {
					t.Errorf("%+v, %s: isMirror = %v, SameContact with mirrorOf = %v", r, name, got, same)
				}
			}
		}
	}
}
