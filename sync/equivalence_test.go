package sync

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/sinch"
)

// randomSnapshot draws CRM rows and Sinch contacts from small pools, so that
// duplicates, shared identities, adoptions, merges, rejects and orphans all
// turn up.
func randomSnapshot(rng *rand.Rand) (Snapshot, Options) {
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	maybe := func(xs ...string) *string {
		if rng.IntN(4) == 0 {
			return nil
		}
		v := pick(xs...)
		return &v
	}
	phones := []string{"+46732000001", "+46732000002", "+46732000003", "+46 73 200 00 04", "bogus", ""}
	exts := []string{"crm-1", "crm-2", "crm-3", "crm-4", "crm-5", "crm-6", "shop-1", " "}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var snap Snapshot
	snap.Complete = rng.IntN(4) != 0
	snap.Source = "crm_contacts"
	for range rng.IntN(8) {
		r := crm.Record{
			ExternalID: pick(exts...), DisplayName: maybe("", "Ada", " Grace "), Email: maybe("", "a@example.com", "b@EXAMPLE.com", "bad@"),
			Phone: maybe(phones...), Language: maybe("", "EN_US", "sv", "xx"), Metadata: maybe("", "x", `{"b":1,"a":2}`, `{"a":2,"b":1}`),
			UpdatedAt: now,
		}
		switch rng.IntN(5) {
		case 0:
			r.ChannelIdentities = []byte(`[{"channel":"MESSENGER","identity":"m-1","app_id":"APP"}]`)
		case 1:
			r.ChannelIdentities = []byte(`[{"channel":"MMS","identity":"+46732000003"}]`)
		}
		if rng.IntN(4) == 0 {
			r.ChannelPriority = [][]string{{}, {"WHATSAPP", "SMS"}, {"SMS"}}[rng.IntN(3)]
		}
		if rng.IntN(5) == 0 {
			r.DeletedAt = &now
		}
		snap.Records = append(snap.Records, r)
	}
	if rng.IntN(5) == 0 {
		snap.Unreadable = append(snap.Unreadable, Rejection{ExternalID: pick(exts...), Column: "updated_at", Reason: "NULL"})
	}
	for i := range rng.IntN(9) {
		c := sinch.Contact{
			ID: fmt.Sprintf("C%02d", rng.IntN(90)+i*100), ExternalID: pick("", "", "crm-1", "crm-2", "crm-3", "crm-7", "shop-1"),
			DisplayName: pick("Unknown", "Ada", "Grace", ""), Email: pick("", "a@example.com", "A@EXAMPLE.COM"),
			Language: pick("EN_US", "SV", "UNSPECIFIED"), Metadata: pick("", `{"a":2,"b":1}`, "x"),
		}
		for _, ch := range []string{"SMS", "WHATSAPP", "MMS"} {
			if rng.IntN(2) == 0 {
				c.ChannelIdentities = append(c.ChannelIdentities, sinch.ChannelIdentity{Channel: ch, Identity: pick("46732000001", "46732000002", "+46732000003", "46732000004")})
			}
		}
		if rng.IntN(3) == 0 {
			c.ChannelIdentities = append(c.ChannelIdentities, sinch.ChannelIdentity{Channel: "MESSENGER", Identity: "m-1", AppID: "APP"})
		}
		if rng.IntN(3) == 0 {
			c.ChannelPriority = []string{"SMS", "MESSENGER"}
		}
		snap.Contacts = append(snap.Contacts, c)
	}
	for i, r := range snap.Records {
		d, rej := Normalize(r, DefaultOptions())
		if rej != nil || d.Deleted || rng.IntN(2) == 0 {
			continue
		}
		c := sinch.Contact{ID: fmt.Sprintf("M%02d", i), ExternalID: d.ExternalID, Language: "EN_US"}
		for _, id := range d.Identities {
			id.Identity = sinch.NormalizeIdentity(id.Channel, id.Identity)
			c.ChannelIdentities = append(c.ChannelIdentities, id)
		}
		for _, f := range []struct {
			dst *string
			src *string
		}{{&c.DisplayName, d.DisplayName}, {&c.Email, d.Email}, {&c.Language, d.Language}, {&c.Metadata, d.Metadata}} {
			if f.src != nil {
				*f.dst = *f.src
			}
		}
		snap.Contacts = append(snap.Contacts, c)
	}
	snap.Links = map[string]crm.Link{}
	for _, c := range snap.Contacts {
		if c.ExternalID != "" && rng.IntN(2) == 0 {
			snap.Links[c.ExternalID] = crm.Link{ExternalID: c.ExternalID, ContactID: c.ID, ContentHash: pick("", "x")}
		}
	}
	opts := DefaultOptions()
	opts.ExternalIDPrefix = pick("", "", "crm-")
	opts.DeletePolicy = []DeletePolicy{DeletePolicyDelete, DeletePolicyUnlink, DeletePolicyIgnore}[rng.IntN(3)]
	opts.MaxDeletes = rng.IntN(3)
	opts.MaxDeleteFraction = []float64{0.1, 1}[rng.IntN(2)]
	opts.AllowMassDelete = rng.IntN(3) == 0
	if rng.IntN(4) == 0 {
		opts.PhoneChannels = []string{"SMS"}
	}
	// Sinch answers identities without '+', which tests above mix on
	// purpose; the link hashes of some records match their content.
	for _, r := range snap.Records {
		if d, rej := Normalize(r, opts); rej == nil && rng.IntN(2) == 0 {
			l := snap.Links[r.ExternalID]
			l.ExternalID, l.ContentHash = r.ExternalID, d.Hash
			snap.Links[r.ExternalID] = l
		}
	}
	return snap, opts
}

// TestDiffMatchesLegacy checks that the diff plans exactly what it planned
// before it was made fast, operation for operation, on random snapshots,
// with and without records normalised in advance.
func TestDiffMatchesLegacy(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	n := 10_000
	if testing.Short() {
		n = 1_000
	}
	for i := range n {
		snap, opts := randomSnapshot(rng)
		want := legacyDiff(snap, opts)
		if got := Diff(snap, opts); !reflect.DeepEqual(got, want) {
			t.Fatalf("case %d: Diff differs from the original\nsnapshot %+v\nopts %+v\ngot  %+v\nwant %+v", i, snap, opts, got, want)
		}
		snap.Prepare(opts)
		if got := Diff(snap, opts); !reflect.DeepEqual(got, want) {
			t.Fatalf("case %d: Diff of a prepared snapshot differs from the original\ngot  %+v\nwant %+v", i, got, want)
		}
		// As a full run holds it: contacts packed, records and links
		// only as indexed.
		lean := snap
		lean.Lean(opts)
		if got := Diff(lean, opts); !reflect.DeepEqual(got, want) {
			t.Fatalf("case %d: Diff of a lean snapshot differs from the original\ngot  %+v\nwant %+v", i, got, want)
		}
		if got := lean.packed.unpack(); !reflect.DeepEqual(got, snap.Contacts) && len(got)+len(snap.Contacts) > 0 {
			t.Fatalf("case %d: packed contacts unpack to\n%+v\nnot\n%+v", i, got, snap.Contacts)
		}
	}
}
