package state_test

import (
	"iter"
	"maps"
	"slices"
	"testing"

	"github.com/syncd/syncd/state"
	"github.com/syncd/syncd/state/statetest"
)

// The first build of a project's identity index (one COPY) and the updates
// after it (a statement per batch of records) leave the same index: the
// keys of each live record, none of a record mapped to none, nothing of
// another project.
func TestIdentityIndexBuildAndUpdate(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	s := statetest.NewStore(t)
	stale := map[string][]string{"crm-9": {"phone:+15550009"}, "crm-1": {"email:old@example.com"}}
	if err := s.IndexIdentities(ctx, "proj", stale); err != nil {
		t.Fatal(err)
	}
	if err := s.IndexIdentities(ctx, "other", map[string][]string{"crm-1": {"phone:+15550001"}}); err != nil {
		t.Fatal(err)
	}
	built := map[string][]string{
		"crm-1": {"email:a@example.com", "phone:+15550001"},
		"crm-2": {"phone:+15550001"}, // shares crm-1's phone
		"crm-3": nil,                 // not live
	}
	if err := s.BuildIdentities(ctx, "proj", seq(built)); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"crm-1": built["crm-1"], "crm-2": built["crm-2"]}
	if got := identitiesOf(t, s, "proj", "crm-1", "crm-2", "crm-3", "crm-9"); !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("after the build the index holds %v, want %v (the stale rows replaced)", got, want)
	}
	holding, err := s.RecordsHolding(ctx, "proj", []string{"phone:+15550001"})
	if err != nil {
		t.Fatal(err)
	}
	if exts := holders(holding); !slices.Equal(exts, []string{"crm-1", "crm-2"}) {
		t.Errorf("the phone is held by %v, want crm-1 and crm-2 (not the other project's crm-1 twice)", exts)
	}

	// An update replaces a record's keys, and a record mapped to none
	// leaves the index.
	if err := s.IndexIdentities(ctx, "proj", map[string][]string{"crm-1": {"email:b@example.com"}, "crm-2": nil}); err != nil {
		t.Fatal(err)
	}
	want = map[string][]string{"crm-1": {"email:b@example.com"}}
	if got := identitiesOf(t, s, "proj", "crm-1", "crm-2"); !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("after the update the index holds %v, want %v", got, want)
	}
	if got := identitiesOf(t, s, "other", "crm-1"); !slices.Equal(got["crm-1"], []string{"phone:+15550001"}) {
		t.Errorf("the other project's index was touched: %v", got)
	}
}

func seq(m map[string][]string) iter.Seq2[string, []string] {
	return func(yield func(string, []string) bool) {
		for _, ext := range slices.Sorted(maps.Keys(m)) {
			if !yield(ext, m[ext]) {
				return
			}
		}
	}
}

func identitiesOf(t *testing.T, s *state.Store, project string, exts ...string) map[string][]string {
	t.Helper()
	got, err := s.RecordIdentities(ctxFor(t), project, exts)
	if err != nil {
		t.Fatal(err)
	}
	for ext := range got {
		slices.Sort(got[ext])
	}
	return got
}

func holders(hs []state.Holding) []string {
	var exts []string
	for _, h := range hs {
		exts = append(exts, h.ExternalID)
	}
	slices.Sort(exts)
	return exts
}
