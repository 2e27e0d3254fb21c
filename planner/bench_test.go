package planner_test

import (
	"fmt"
	"runtime"
	"strconv"
	stdsync "sync"
	"testing"
	"time"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
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

// benchIndex is a full run over n rows against a drifted project: 90% in
// sync and linked, 5% changed, 2% missing, 1% duplicated, 1% held by an
// auto-created contact, 1% tombstoned, plus 1% orphans and 1% strangers.
func benchIndex(n int) benchSides {
	var idx benchSides
	idx.Records = make([]crm.Record, 0, n)
	idx.Contacts = make([]sinch.Contact, 0, n+n/100)
	benchRows(n, func(r crm.Record, contacts []sinch.Contact, links []planner.Link) {
		idx.Records = append(idx.Records, r)
		idx.Contacts = append(idx.Contacts, contacts...)
		idx.Links = append(idx.Links, links...)
	})
	return idx
}

// benchRows generates the rows of benchIndex one at a time, each with
// the contacts and links that go with it, so that a million of them need
// not be held at once.
func benchRows(n int, fn func(r crm.Record, contacts []sinch.Contact, links []planner.Link)) {
	opts := planner.DefaultOptions()
	var contacts []sinch.Contact
	var links []planner.Link
	next := 0
	add := func(c sinch.Contact, link bool, hash string) {
		c.ID = fmt.Sprintf("01JB%022d", next)
		next++
		contacts = append(contacts, c)
		if link {
			links = append(links, planner.Link{ExternalID: c.ExternalID, ContactID: c.ID, ContentHash: hash})
		}
	}
	for i := range n {
		contacts, links = contacts[:0], links[:0]
		r := benchRecord(i)
		if i%100 == 99 {
			now := r.UpdatedAt
			r.DeletedAt = &now
		}
		hash := ""
		if want, rej := planner.Normalize(r, opts); rej == nil {
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
		fn(r, contacts, links)
	}
}

// benchSides are both sides of a benchmark, held whole.
type benchSides struct {
	Records  []crm.Record
	Contacts []sinch.Contact
	Links    []planner.Link
}

var benchIndexes stdsync.Map // n -> benchSides

func cachedIndex(n int) benchSides {
	if s, ok := benchIndexes.Load(n); ok {
		return s.(benchSides)
	}
	s := benchIndex(n)
	benchIndexes.Store(n, s)
	return s
}

// BenchmarkDiff is the pure diff of a full run: n CRM rows against about n
// Sinch contacts, held as a full run holds them (records, links, then the
// contacts, those linked and in sync as seen bits), including the second
// diff once the contacts it asks for are added. Building the index is
// not timed: a run does it while the list chain goes on. ns/row and B/row
// are per CRM row.
func BenchmarkDiff(b *testing.B) {
	opts := planner.DefaultOptions()
	opts.AllowMassDelete = true
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run("rows="+strconv.Itoa(n), func(b *testing.B) {
			sides := cachedIndex(n)
			byID := make(map[string]sinch.Contact, len(sides.Contacts))
			for _, c := range sides.Contacts {
				byID[c.ID] = c
			}
			b.ReportAllocs()
			var p planner.Plan
			for b.Loop() {
				b.StopTimer()
				idx := planner.NewIndex(opts, crm.Source{Relation: "crm_contacts"}, true)
				idx.AddRecords(sides.Records)
				idx.AddLinks(sides.Links...)
				idx.AddContacts(sides.Contacts)
				b.StartTimer()
				p = planner.Diff(idx)
				if len(p.Fetch) > 0 {
					got := make([]sinch.Contact, 0, len(p.Fetch))
					for _, id := range p.Fetch {
						got = append(got, byID[id])
					}
					idx.AddContacts(got)
					p = planner.Diff(idx)
				}
			}
			if s := p.Summary(); s.Create != 2*n/100 || s.Delete != 2*n/100 {
				b.Fatalf("unexpected plan: %v", s)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/row")
		})
	}
}

// BenchmarkNormalize turns one CRM row into the contact it asks for, for the
// shapes phone numbers come in.
func BenchmarkNormalize(b *testing.B) {
	national := planner.DefaultOptions()
	national.DefaultRegion = "SE"
	for _, bc := range []struct {
		name  string
		phone string
		opts  planner.Options
	}{
		{"e164", "+46701234567", planner.DefaultOptions()},
		{"spaced", "+46 70 123 45 67", planner.DefaultOptions()},
		{"national", "070-123 45 67", national},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := benchRecord(10)
			r.Phone = &bc.phone
			b.ReportAllocs()
			for b.Loop() {
				if _, rej := planner.Normalize(r, bc.opts); rej != nil {
					b.Fatal(rej)
				}
			}
		})
	}
	b.Run("identities", func(b *testing.B) {
		r := benchRecord(10)
		r.ChannelIdentities = []byte(`[{"channel":"MESSENGER","identity":"7968425018576406","app_id":"01EB7TQRD1J1AMPPC4KA4QRZNB"},{"channel":"VIBERBM","identity":"+46701234568"}]`)
		r.ChannelPriority = []string{"WHATSAPP", "SMS"}
		opts := planner.DefaultOptions()
		b.ReportAllocs()
		for b.Loop() {
			if _, rej := planner.Normalize(r, opts); rej != nil {
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
				if _, err := planner.NormalizePhone(bc.raw, bc.region); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkIndexHeap is the live heap a full run's index and plan
// hold, step by step, as a run builds them: records in batches, then links,
// then contacts in pages (those linked and in sync as seen bits), then the
// plan, with the contacts it asks for read afresh, and at last the plan
// alone, as a run holds it once the index is done with. The rows are generated as
// they go in, so what is measured is the index's alone. It is a
// benchmark so that the plain test run skips it:
//
//	go test -run '^$' -bench IndexHeap -benchtime 1x ./planner/
func BenchmarkIndexHeap(b *testing.B) {
	const n = 1_000_000
	opts := planner.DefaultOptions()
	opts.AllowMassDelete = true
	live := func() float64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return float64(ms.HeapAlloc) / (1 << 20)
	}
	for b.Loop() {
		base := live()
		idx := planner.NewIndex(opts, crm.Source{Relation: "crm_contacts"}, true)
		batch := make([]crm.Record, 0, 1000)
		benchRows(n, func(r crm.Record, _ []sinch.Contact, _ []planner.Link) {
			if batch = append(batch, r); len(batch) == cap(batch) {
				idx.AddRecords(batch)
				batch = batch[:0]
			}
		})
		idx.AddRecords(batch)
		records := live()
		benchRows(n, func(_ crm.Record, _ []sinch.Contact, links []planner.Link) { idx.AddLinks(links...) })
		links := live()
		page := make([]sinch.Contact, 0, sinch.MaxPageSize)
		benchRows(n, func(_ crm.Record, contacts []sinch.Contact, _ []planner.Link) {
			for _, c := range contacts {
				if page = append(page, c); len(page) == cap(page) {
					idx.AddContacts(page)
					page = page[:0]
				}
			}
		})
		idx.AddContacts(page)
		page = nil
		contacts := live()
		p := planner.Diff(idx)
		gets := len(p.Fetch)
		if gets > 0 {
			want := make(map[string]bool, len(p.Fetch))
			for _, id := range p.Fetch {
				want[id] = true
			}
			var got []sinch.Contact
			benchRows(n, func(_ crm.Record, contacts []sinch.Contact, _ []planner.Link) {
				for _, c := range contacts {
					if want[c.ID] {
						got = append(got, c)
					}
				}
			})
			want = nil
			p = planner.Plan{} // dropped before the second is made
			idx.AddContacts(got)
			got = nil
			p = planner.Diff(idx)
		}
		planned := live()
		runtime.KeepAlive(idx)
		// What a run holds once the index is done with: the plan, while
		// it is applied, and its report.
		idx = nil
		alone := live()
		runtime.KeepAlive(p)
		b.ReportMetric(records-base, "MiB-records")
		b.ReportMetric(links-records, "MiB-links")
		b.ReportMetric(contacts-links, "MiB-contacts")
		b.ReportMetric(planned-contacts, "MiB-plan")
		b.ReportMetric(planned-base, "MiB-total")
		b.ReportMetric(alone-base, "MiB-plan-alone")
		b.ReportMetric(float64(gets), "gets")
		b.ReportMetric(float64(len(p.Operations)), "ops")
	}
}
