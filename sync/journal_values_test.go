package sync

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
)

// The journal's changes are encoded by hand; they must be what
// encoding/json writes, whatever the CRM's values hold.
func TestAppendChangesJSONIsMarshal(t *testing.T) {
	for _, tc := range []struct {
		name    string
		changes []planner.Change
	}{
		{"one field", []planner.Change{{Field: sinch.FieldDisplayName, Old: "Ann", New: "Anne"}}},
		{"a create's values", []planner.Change{{Field: sinch.FieldDisplayName, New: "Ann"}, {Field: sinch.FieldChannelIdentities, New: "SMS 46701234567, WHATSAPP 46701234567"}}},
		{"quotes and backslashes", []planner.Change{{Field: sinch.FieldMetadata, Old: `{"a":"b\\c"}`, New: `{"a":"\"d\""}`}}},
		{"control characters", []planner.Change{{Field: sinch.FieldDisplayName, Old: "a\nb\rc\td\be\ff\x00g\x1fh\x7f", New: "\x01"}}},
		{"HTML", []planner.Change{{Field: sinch.FieldDisplayName, Old: "<b>&amp;</b>", New: "a>b"}}},
		{"unicode", []planner.Change{{Field: sinch.FieldDisplayName, Old: "Åsa Öberg 李 😀", New: "line\u2028para\u2029end"}}},
		{"invalid UTF-8", []planner.Change{{Field: sinch.FieldDisplayName, Old: "a\xffb\xc3", New: "\xed\xa0\x80"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireMarshalled(t, tc.changes)
		})
	}
}

func FuzzAppendChangesJSON(f *testing.F) {
	f.Add("display_name", "Ann", "Anne")
	f.Add("metadata", `{"a":"\u2028"}`, "\xff<>&")
	f.Fuzz(func(t *testing.T, field, old, new string) {
		requireMarshalled(t, []planner.Change{{Field: field, Old: old, New: new}, {Field: field, New: old}})
	})
}

func requireMarshalled(t *testing.T, changes []planner.Change) {
	t.Helper()
	want, err := json.Marshal(changes)
	if err != nil {
		t.Fatal(err)
	}
	if got := appendChangesJSON(nil, changes); !bytes.Equal(got, want) {
		t.Fatalf("appendChangesJSON(%q)\n got %s\nwant %s", changes, got, want)
	}
}
