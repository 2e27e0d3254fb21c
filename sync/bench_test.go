package sync_test

import (
	"fmt"
	"strconv"
	stdsync "sync"
	"testing"
	"time"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/sinch"
	contactsync "github.com/syncd/syncd/sync"
)

// benchRecord is CRM row i of a realistic table: a name, an e-mail, a phone
// in E.164, a language, metadata on one row in ten.
func benchRecord(i int) crm.Record {
	s := func(v string) *string { return &v }
	lang := "EN_US"
	if i%3 == 0 {
		lang = "SV"
	}
	r := crm.Record{
		ExternalID:  fmt.Sprintf("crm-%08d", i),
		DisplayName: s("Contact " + strconv.Itoa(i)),
		Email:       s("contact" + strconv.Itoa(i) + "@example.com"),
		Phone:       s(fmt.Sprintf("+4670%07d", i)),
		Language:    s(lang),
		UpdatedAt:   time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	if i%10 == 0 {
		r.Metadata = s(`{"tier":"gold","since":2019}`)
	}
	return r
}

// benchSnapshot is a full run over n rows against a drifted project: 90% in
// sync and linked, 5% changed, 2% missing, 1% duplicated, 1% held by an
// auto-created contact, 1% tombstoned, plus 1% orphans and 1% strangers.
func benchSnapshot(n int) benchSides {
	opts := contactsync.DefaultOptions()
	var snap benchSides
	snap.Records = make([]crm.Record, 0, n)
	snap.Contacts = make([]sinch.Contact, 0, n+n/100)
	add := func(c sinch.Contact, link bool, hash string) {
		c.ID = fmt.Sprintf("01JB%022d", len(snap.Contacts))
		snap.Contacts = append(snap.Contacts, c)
		if link {
			snap.Links = append(snap.Links, crm.Link{ExternalID: c.ExternalID, ContactID: c.ID, ContentHash: hash})
		}
	}
	for i := range n {
		r := benchRecord(i)
		if i%100 == 99 {
			now := r.UpdatedAt
			r.DeletedAt = &now
		}
		snap.Records = append(snap.Records, r)
		hash := ""
		if want, rej := contactsync.Normalize(r, opts); rej == nil {
			hash = want.Hash
		}
		msisdn := (*r.Phone)[1:]
		c := sinch.Contact{
			ExternalID: r.ExternalID, DisplayName: *r.DisplayName, Email: *r.Email, Language: *r.Language,
			ChannelIdentities: []sinch.ChannelIdentity{{Channel: "SMS", Identity: msisdn}, {Channel: "WHATSAPP", Identity: msisdn}},
		}
		if r.Metadata != nil {
			c.Metadata = *r.Metadata
		}
		switch m := i % 100; {
		case m < 90, m == 99:
			add(c, true, hash)
		case m < 95:
			c.DisplayName = "Old name"
			add(c, true, "stale")
		case m < 97:
		case m == 97:
			add(c, true, hash)
			c.ChannelIdentities = c.ChannelIdentities[:1]
			add(c, false, "")
		case m == 98:
			add(sinch.Contact{ChannelIdentities: []sinch.ChannelIdentity{{Channel: "WHATSAPP", Identity: msisdn}},
				DisplayName: "Unknown", Language: "UNSPECIFIED"}, false, "")
		}
		if i%100 == 99 {
			add(sinch.Contact{ExternalID: fmt.Sprintf("gone-%08d", i), DisplayName: "Gone", Language: "EN_US",
				ChannelIdentities: []sinch.ChannelIdentity{{Channel: "SMS", Identity: fmt.Sprintf("4672%07d", i)}}}, true, "x")
			add(sinch.Contact{ChannelIdentities: []sinch.ChannelIdentity{{Channel: "WHATSAPP", Identity: fmt.Sprintf("4673%07d", i)}},
				DisplayName: "Unknown", Language: "UNSPECIFIED"}, false, "")
		}
	}
	return snap
}

// benchSides are both sides of a benchmark, held whole.
type benchSides struct {
	Records  []crm.Record
	Contacts []sinch.Contact
	Links    []crm.Link
}

var benchSnapshots stdsync.Map // n -> benchSides

func cachedSnapshot(n int) benchSides {
	if s, ok := benchSnapshots.Load(n); ok {
		return s.(benchSides)
	}
	s := benchSnapshot(n)
	benchSnapshots.Store(n, s)
	return s
}

// BenchmarkDiff is the pure diff of a full run: n CRM rows against about n
// Sinch contacts, held as a full run holds them (records, links, then the
// contacts, those linked and in sync as seen bits), including the second
// diff once the contacts it asks for are added. Building the snapshot is
// not timed: a run does it while the list chain goes on. ns/row and B/row
// are per CRM row.
func BenchmarkDiff(b *testing.B) {
	opts := contactsync.DefaultOptions()
	opts.AllowMassDelete = true
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run("rows="+strconv.Itoa(n), func(b *testing.B) {
			sides := cachedSnapshot(n)
			byID := make(map[string]sinch.Contact, len(sides.Contacts))
			for _, c := range sides.Contacts {
				byID[c.ID] = c
			}
			b.ReportAllocs()
			var plan contactsync.Plan
			for b.Loop() {
				b.StopTimer()
				snap := contactsync.NewSnapshot(opts, crm.Source{Relation: "crm_contacts"}, true)
				snap.AddRecords(sides.Records)
				snap.AddLinks(sides.Links...)
				snap.AddContacts(sides.Contacts)
				b.StartTimer()
				plan = contactsync.Diff(snap)
				if len(plan.Fetch) > 0 {
					got := make([]sinch.Contact, 0, len(plan.Fetch))
					for _, id := range plan.Fetch {
						got = append(got, byID[id])
					}
					snap.AddContacts(got)
					plan = contactsync.Diff(snap)
				}
			}
			if s := plan.Summary(); s.Create != 2*n/100 || s.Delete != 2*n/100 {
				b.Fatalf("unexpected plan: %v", s)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/row")
		})
	}
}

// BenchmarkNormalize turns one CRM row into the contact it asks for, for the
// shapes phone numbers come in.
func BenchmarkNormalize(b *testing.B) {
	national := contactsync.DefaultOptions()
	national.DefaultRegion = "SE"
	for _, bc := range []struct {
		name  string
		phone string
		opts  contactsync.Options
	}{
		{"e164", "+46701234567", contactsync.DefaultOptions()},
		{"spaced", "+46 70 123 45 67", contactsync.DefaultOptions()},
		{"national", "070-123 45 67", national},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := benchRecord(10)
			r.Phone = &bc.phone
			b.ReportAllocs()
			for b.Loop() {
				if _, rej := contactsync.Normalize(r, bc.opts); rej != nil {
					b.Fatal(rej)
				}
			}
		})
	}
	b.Run("identities", func(b *testing.B) {
		r := benchRecord(10)
		r.ChannelIdentities = []byte(`[{"channel":"MESSENGER","identity":"7968425018576406","app_id":"01EB7TQRD1J1AMPPC4KA4QRZNB"},{"channel":"VIBERBM","identity":"+46701234568"}]`)
		r.ChannelPriority = []string{"WHATSAPP", "SMS"}
		opts := contactsync.DefaultOptions()
		b.ReportAllocs()
		for b.Loop() {
			if _, rej := contactsync.Normalize(r, opts); rej != nil {
				b.Fatal(rej)
			}
		}
	})
}

// BenchmarkNormalizePhone is the phone parser alone.
func BenchmarkNormalizePhone(b *testing.B) {
	for _, bc := range []struct{ name, raw, region string }{
		{"e164", "+46701234567", ""},
		{"spaced", "+46 70 123 45 67", ""},
		{"national", "070-123 45 67", "SE"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := contactsync.NormalizePhone(bc.raw, bc.region); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
