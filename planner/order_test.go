package planner

import (
	"fmt"
	"slices"
	"testing"

	"github.com/syncd/syncd/sinch"
)

func TestGroupByExternalID(t *testing.T) {
	restore := func(ext, from string) Operation {
		return Operation{Kind: OpPatch, ExternalID: ext, UpdateMask: []string{sinch.FieldExternalID},
			Changes: []Change{{Field: sinch.FieldExternalID, Old: from, New: ext}}}
	}
	create := func(ext string) Operation { return Operation{Kind: OpCreate, ExternalID: ext} }
	patch := func(ext string) Operation {
		return Operation{Kind: OpPatch, ExternalID: ext, Changes: []Change{{Field: sinch.FieldDisplayName, Old: "a", New: "b"}}}
	}
	for _, tc := range []struct {
		name string
		ops  []Operation
		want [][]int
	}{
		{"one group per external_id, plan order within", []Operation{create("a"), patch("b"), patch("a")}, [][]int{{0, 2}, {1}}},
		// crm-1's contact carries crm-2 by a hand edit: the create of crm-2
		// waits for the patch that gives the contact crm-1 back.
		{"a create waits for the patch that frees its external_id", []Operation{create("crm-2"), restore("crm-1", "crm-2")}, [][]int{{1, 0}}},
		// crm-0 is gone; its contact, keyed to crm-2 by hand, is deleted
		// before crm-2's create.
		{"a create waits for the delete that frees its external_id", []Operation{create("crm-2"), {
			Kind: OpDelete, ExternalID: "crm-0", Before: []sinch.Contact{{ExternalID: "crm-2"}},
		}}, [][]int{{1, 0}}},
		{"chains join", []Operation{create("c"), restore("b", "c"), restore("a", "b")}, [][]int{{2, 1, 0}}},
		{"a swap is one group", []Operation{restore("a", "b"), restore("b", "a")}, [][]int{{0, 1}}},
		// The diff breaks a swap with a patch that clears one external_id
		// first (breakSwaps).
		{"a swap broken by a clear runs clear, restore, restore", []Operation{restore("a", "b"), {
			Kind: OpPatch, ExternalID: "b", Changes: []Change{{Field: sinch.FieldExternalID, Old: "a", New: ""}},
		}, restore("b", "")}, [][]int{{1, 0, 2}}},
		{"a merge and a patch of the freed external_id's record wait only where they set it", []Operation{
			{Kind: OpMerge, ExternalID: "b"}, restore("b", ""), restore("a", "b"), create("c"),
		}, [][]int{{0, 2, 1}, {3}}},
		{"a rename frees an external_id nothing else uses", []Operation{restore("new", "old"), create("x")}, [][]int{{0}, {1}}},
		{"clearing an external_id frees nothing for another", []Operation{
			{Kind: OpPatch, ExternalID: "a", Changes: []Change{{Field: sinch.FieldExternalID, Old: "a", New: ""}}}, create("b"),
		}, [][]int{{0}, {1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Order(tc.ops)
			if !slices.EqualFunc(got, tc.want, slices.Equal[[]int]) {
				t.Errorf("groups %v, want %v", got, tc.want)
			}
		})
	}
}

// BenchmarkGroupByExternalID groups a backfill's worth of creates with a
// few restores that free an external_id: what every full run's apply pays
// before its first write.
func BenchmarkGroupByExternalID(b *testing.B) {
	const n = 1_000_000
	ops := make([]Operation, 0, n+n/1000)
	for i := range n {
		ops = append(ops, Operation{Kind: OpCreate, ExternalID: fmt.Sprintf("crm-%07d", i)})
	}
	for i := 0; i < n; i += 1000 {
		ops = append(ops, Operation{Kind: OpPatch, ExternalID: fmt.Sprintf("old-%07d", i), UpdateMask: []string{sinch.FieldExternalID},
			Changes: []Change{{Field: sinch.FieldExternalID, Old: fmt.Sprintf("crm-%07d", i), New: fmt.Sprintf("old-%07d", i)}}})
	}
	b.ReportAllocs()
	for b.Loop() {
		if len(Order(ops)) != n {
			b.Fatal("wrong groups")
		}
	}
}
