package state_test

import (
	"fmt"
	"testing"

	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/state"
	"github.com/syncd/syncd/state/statetest"
)

// stateLinks are n links of one project, as a full run of n records saves
// them.
func stateLinks(n int) []planner.Link {
	links := make([]planner.Link, n)
	for i := range links {
		links[i] = planner.Link{ExternalID: fmt.Sprintf("crm-%07d", i), ContactID: fmt.Sprintf("01HZX%021d", i),
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
	s := statetest.NewStore(b)
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
			if err := s.EachLink(ctx, "p", func(planner.Link) { seen++ }); err != nil || seen != n {
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
	s := statetest.NewStore(b)
	ctx := ctxFor(b)
	run, err := s.StartRun(ctx, "p", "full")
	if err != nil {
		b.Fatal(err)
	}
	entries := func() []state.JournalEntry {
		es := make([]state.JournalEntry, n)
		for i := range es {
			es[i] = state.JournalEntry{RunID: run.ID, Kind: planner.OpPatch, ExternalID: fmt.Sprintf("crm-%07d", i),
				ContactID: fmt.Sprintf("01HZX%021d", i), UpdateMask: []string{"display_name", "email"}, Reason: "changed: display_name",
				Changes: fmt.Appendf(nil, `[{"field":"display_name","old":"Person %d","new":"Renamed %d"},`+
					`{"field":"email","old":"p%d@example.com","new":"r%d@example.com"}]`, i, i, i, i)}
		}
		return es
	}
	var last []state.JournalEntry
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
			if err := s.JournalMark(ctx, last[i%n].ID, state.StatusDone, 200, "", ""); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "marks/s")
	})
	b.Run("JournalMarks", func(b *testing.B) {
		b.ReportAllocs()
		marks := make([]state.JournalMark, n)
		for i, e := range last {
			marks[i] = state.JournalMark{ID: e.ID, Status: state.StatusDone, HTTPStatus: 200}
		}
		for b.Loop() {
			if err := s.JournalMarks(ctx, marks); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "marks/s")
	})
}
