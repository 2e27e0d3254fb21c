package planner_test

import (
	"slices"
	"testing"

	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
)

func TestLookupKeys(t *testing.T) {
	for _, tc := range []struct {
		name string
		ids  []sinch.ChannelIdentity
		want []string
	}{
		{"none", nil, []string{}},
		{"one phone on two channels is one key", []sinch.ChannelIdentity{
			{Channel: "WHATSAPP", Identity: "46732000001"}, {Channel: "SMS", Identity: "46732000001"},
		}, []string{"tel:+46732000001"}},
		{"with and without its plus", []sinch.ChannelIdentity{
			{Channel: "SMS", Identity: "+46732000001"}, {Channel: "WHATSAPP", Identity: "46732000001"},
		}, []string{"tel:+46732000001"}},
		{"app-scoped identities keep their app", []sinch.ChannelIdentity{
			{Channel: "MESSENGER", Identity: "m-1", AppID: "B"}, {Channel: "MESSENGER", Identity: "m-1", AppID: "A"},
			{Channel: "SMS", Identity: "46732000002"},
		}, []string{"MESSENGER:m-1@A", "MESSENGER:m-1@B", "tel:+46732000002"}},
		{"an identity PostgreSQL cannot store has no key", []sinch.ChannelIdentity{
			{Channel: "SMS", Identity: "4673\x00"}, {Channel: "SMS", Identity: "46732000003"},
		}, []string{"tel:+46732000003"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := planner.LookupKeys(tc.ids); !slices.Equal(got, tc.want) {
				t.Errorf("LookupKeys = %q, want %q", got, tc.want)
			}
			// Appended after other keys, which stay as they were.
			got := planner.AppendLookupKeys([]string{"z-first"}, tc.ids)
			if !slices.Equal(got, append([]string{"z-first"}, tc.want...)) {
				t.Errorf("AppendLookupKeys = %q, want z-first then %q", got, tc.want)
			}
		})
	}
}
