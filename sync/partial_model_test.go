package sync_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/state"
	contactsync "github.com/syncd/syncd/sync"
)

// TestPartialRunsDecideAsFull drives the model of TestModel (the CRM table,
// the emulator, runs of both kinds) through random sequences, then asks a
// partial run about every record and every contact (Explain, whose scope
// is the record or contact and everything connected to it, read afresh)
// and checks that what they plan together is what a full run plans: the
// same operations for the same reasons, and the same notes. So a partial
// run's plan for a component of the identity graph is the full run's plan
// restricted to that component.
func TestPartialRunsDecideAsFull(t *testing.T) {
	modelDefaults(t, map[string]int{"rapid.checks": 20, "rapid.steps": 20})
	env := newModelEnv(t)
	check := 0
	rapid.Check(t, func(rt *rapid.T) {
		check++
		h := env.start(rt, fmt.Sprintf("partial-%d", check))
		defer h.close()
		for range rapid.IntRange(1, 4).Draw(rt, "records") {
			h.crmInsert(rt)
		}
		for range rapid.IntRange(0, 2).Draw(rt, "auto-created") {
			h.sinchAutoCreate(rt)
		}
		// The first full run indexes every record's identities; until
		// then partial runs leave identity questions to it.
		h.run(rt, state.RunFull, stopAt{})
		rt.Repeat(map[string]func(*rapid.T){
			"crm insert":                 h.crmInsert,
			"crm insert sharing a phone": h.crmInsertShared,
			"crm edit":                   h.crmEdit,
			"crm tombstone":              h.crmTombstone,
			"crm hard delete":            h.crmHardDelete,
			"crm rename":                 h.crmRename,
			"sinch edit field":           h.sinchEditField,
			"sinch rekey":                h.sinchRekey,
			"sinch delete":               h.sinchDelete,
			"sinch merge":                h.sinchMerge,
			"sinch auto-create":          h.sinchAutoCreate,
			"sinch add messenger":        h.sinchAddMessenger,
			"run full":                   func(rt *rapid.T) { h.run(rt, state.RunFull, stopAt{}) },
			"run incremental":            func(rt *rapid.T) { h.run(rt, state.RunIncremental, stopAt{}) },
		})
		h.partialAsFull(rt)
	})
}

// partialAsFull compares the plans of partial scopes around every record
// and contact with the full run's plan.
func (h *modelHarness) partialAsFull(rt *rapid.T) {
	ctx := context.Background()
	rec := h.reconciler(h.env.store, h.client)
	full, err := rec.Plan(ctx)
	if err != nil {
		rt.Fatal(err)
	}
	seeds := slices.Sorted(maps.Keys(h.records))
	for _, c := range h.emu.Contacts() {
		seeds = append(seeds, c.ID)
	}
	links, err := h.env.store.Links(ctx, h.project)
	if err != nil {
		rt.Fatal(err)
	}
	for ext := range links {
		seeds = append(seeds, ext)
	}
	opsOf := func(ops []planner.Operation) []string {
		var out []string
		for _, op := range ops {
			out = append(out, op.String()+": "+op.Reason+" retires "+op.Retires)
		}
		return out
	}
	fullOps := opsOf(full.Operations)
	var ops, notes []string
	for _, seed := range seeds {
		ex, err := rec.Explain(ctx, h.env.store, seed)
		if errors.Is(err, contactsync.ErrNotFound) {
			continue
		}
		if err != nil {
			rt.Fatalf("explain %s: %v", seed, err)
		}
		// Each scope plans a part of the full plan, and at least all of it
		// that is about the seed itself.
		mine := opsOf(ex.Operations)
		for _, op := range mine {
			if !slices.Contains(fullOps, op) {
				rt.Fatalf("the scope of %s plans %q, which the full run does not:\nfull %q\nSinch: %s", seed, op, fullOps, h.describe(h.emu.Contacts()))
			}
		}
		for i, op := range full.Operations {
			if (op.ExternalID == seed || op.ContactID == seed || op.SourceContactID == seed) && !slices.Contains(mine, fullOps[i]) {
				rt.Fatalf("the scope of %s misses %q:\npartial %q\nSinch: %s", seed, fullOps[i], mine, h.describe(h.emu.Contacts()))
			}
		}
		ops = append(ops, mine...)
		notes = append(notes, ex.Notes...)
	}
	set := func(s []string) []string {
		slices.Sort(s)
		return slices.Compact(s)
	}
	wantNotes := slices.DeleteFunc(slices.Clone(full.Notes), func(n string) bool {
		return n == "the CRM source returned no rows: nothing is deleted" // a partial run cannot see that: it deletes nothing then either
	})
	if want, got := set(opsOf(full.Operations)), set(ops); !slices.Equal(want, got) {
		rt.Fatalf("operations differ:\nfull    %q\npartial %q\nSinch: %s", want, got, h.describe(h.emu.Contacts()))
	}
	if want, got := set(wantNotes), set(notes); !slices.Equal(want, got) {
		rt.Fatalf("notes differ:\nfull    %q\npartial %q\nSinch: %s", want, got, h.describe(h.emu.Contacts()))
	}
}
