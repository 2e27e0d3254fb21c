package crm_test

import (
	"fmt"
	"testing"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/crm/crmtest"
)

// BenchmarkRecords streams a 100k-row CRM, the full-reconcile read path.
func BenchmarkRecords(b *testing.B) {
	const rows = 100_000
	s := crmtest.NewStore(b)
	recs := make([]crm.Record, rows)
	for i := range recs {
		id := fmt.Sprintf("crm-%07d", i)
		recs[i] = crm.Record{
			ExternalID: id, DisplayName: ptr("Contact " + id), Email: ptr(id + "@example.com"),
			Phone: ptr(fmt.Sprintf("+4670%07d", i)), ChannelPriority: []string{"WHATSAPP", "SMS"},
			ChannelIdentities: []byte(`[{"channel":"MESSENGER","identity":"` + id + `"}]`),
			Language:          ptr("EN_US"), Metadata: ptr(`{"tier":"gold"}`),
		}
	}
	if err := s.UpsertRecords(ctxFor(b), contacts, recs); err != nil {
		b.Fatal(err)
	}
	mustExec(b, s, "VACUUM ANALYZE crm_contacts")

	for _, batch := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			b.ReportAllocs()
			ctx := ctxFor(b)
			for b.Loop() {
				n := 0
				for recs, err := range s.Records(ctx, crm.Source{Relation: contacts}, batch) {
					if err != nil {
						b.Fatal(err)
					}
					n += len(recs)
				}
				if n != rows {
					b.Fatalf("streamed %d rows, want %d", n, rows)
				}
			}
			b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// stateLinks are n links of one project, as a full run of n records saves
// them.
func stateLinks(n int) []crm.Link {
	links := make([]crm.Link, n)
	for i := range links {
		links[i] = crm.Link{ExternalID: fmt.Sprintf("crm-%07d", i), ContactID: fmt.Sprintf("01HZX%021d", i),
			ContentHash: fmt.Sprintf("%032x", i)}
	}
	return links
}

// BenchmarkLinkState measures syncd's own link state at 100k links: saving
// them (a first backfill), and reading them back as a map (incremental runs)
// and as a stream (full runs).
func BenchmarkLinkState(b *testing.B) {
	const n = 100_000
	links := stateLinks(n)
	s := crmtest.NewStore(b)
	ctx := ctxFor(b)
	b.Run("SaveLinks", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := s.SaveLinks(ctx, "p", links); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "links/s")
	})
	mustExec(b, s, "VACUUM ANALYZE syncd.links")
	b.Run("Links", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			got, err := s.Links(ctx, "p")
			if err != nil || len(got) != n {
				b.Fatalf("%d links, %v", len(got), err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "links/s")
	})
	b.Run("EachLink", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			seen := 0
			if err := s.EachLink(ctx, "p", func(crm.Link) { seen++ }); err != nil || seen != n {
				b.Fatalf("%d links, %v", seen, err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "links/s")
	})
}

// BenchmarkJournal measures the journal of a 10k-operation run: appending
// the plan (patches of two fields, with their old and new values), then
// marking every answer, one by one and in one batch.
func BenchmarkJournal(b *testing.B) {
	const n = 10_000
	s := crmtest.NewStore(b)
	ctx := ctxFor(b)
	run, err := s.StartRun(ctx, "p", "full")
	if err != nil {
		b.Fatal(err)
	}
	entries := func() []crm.JournalEntry {
		es := make([]crm.JournalEntry, n)
		for i := range es {
			es[i] = crm.JournalEntry{RunID: run.ID, Kind: crm.JournalPatch, ExternalID: fmt.Sprintf("crm-%07d", i),
				ContactID: fmt.Sprintf("01HZX%021d", i), UpdateMask: []string{"display_name", "email"}, Reason: "changed: display_name",
				Changes: fmt.Appendf(nil, `[{"field":"display_name","old":"Person %d","new":"Renamed %d"},`+
					`{"field":"email","old":"p%d@example.com","new":"r%d@example.com"}]`, i, i, i, i)}
		}
		return es
	}
	var last []crm.JournalEntry
	b.Run("JournalAppend", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			last = entries()
			if err := s.JournalAppend(ctx, last); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "entries/s")
	})
	b.Run("JournalMark", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if err := s.JournalMark(ctx, last[i%n].ID, crm.JournalDone, 200, "", ""); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "marks/s")
	})
	b.Run("JournalMarks", func(b *testing.B) {
		b.ReportAllocs()
		marks := make([]crm.JournalMark, n)
		for i, e := range last {
			marks[i] = crm.JournalMark{ID: e.ID, Status: crm.JournalDone, HTTPStatus: 200}
		}
		for b.Loop() {
			if err := s.JournalMarks(ctx, marks); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "marks/s")
	})
}
