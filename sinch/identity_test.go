package sinch_test

import (
	"testing"

	"github.com/syncd/syncd/sinch"
)

func TestIdentityEquality(t *testing.T) {
	tests := []struct {
		a, b sinch.ChannelIdentity
		same bool
	}{
		{sinch.ChannelIdentity{Channel: "SMS", Identity: "46701234567"}, sinch.ChannelIdentity{Channel: "SMS", Identity: " +46701234567 "}, true},
		{sinch.ChannelIdentity{Channel: "SMS", Identity: "46701234567"}, sinch.ChannelIdentity{Channel: "WHATSAPP", Identity: "46701234567"}, false},
		{sinch.ChannelIdentity{Channel: "MESSENGER", Identity: "123", AppID: "A"}, sinch.ChannelIdentity{Channel: "MESSENGER", Identity: "123", AppID: "B"}, false},
		{sinch.ChannelIdentity{Channel: "TELEGRAM", Identity: "x", AppID: "ignored"}, sinch.ChannelIdentity{Channel: "TELEGRAM", Identity: "x"}, true},
		{sinch.ChannelIdentity{Channel: "MESSENGER", Identity: "+123", AppID: "A"}, sinch.ChannelIdentity{Channel: "MESSENGER", Identity: "123", AppID: "A"}, false},
		{sinch.ChannelIdentity{Channel: "SMS", Identity: "++1"}, sinch.ChannelIdentity{Channel: "SMS", Identity: "+1"}, false},
	}
	for _, tt := range tests {
		if got := sinch.SameIdentity(tt.a, tt.b); got != tt.same {
			t.Errorf("SameIdentity(%+v, %+v) = %v, want %v", tt.a, tt.b, got, tt.same)
		}
		if got := sinch.IdentityKey(tt.a) == sinch.IdentityKey(tt.b); got != tt.same {
			t.Errorf("IdentityKey equality of %+v and %+v = %v, want %v", tt.a, tt.b, got, tt.same)
		}
	}
}

func TestFormatIdentities(t *testing.T) {
	ids := []sinch.ChannelIdentity{
		{Channel: "SMS", Identity: "46732000000"},
		{Channel: "WHATSAPP", Identity: "+46732000000"},
		{Channel: "MESSENGER", Identity: "7968425018576406", AppID: "01E9"},
	}
	want := "SMS +46732000000, WHATSAPP +46732000000, MESSENGER 7968425018576406 (app 01E9)"
	if got := sinch.FormatIdentities(ids); got != want {
		t.Errorf("FormatIdentities = %q, want %q", got, want)
	}
	if got := sinch.FormatIdentities(nil); got != "" {
		t.Errorf("sinch.FormatIdentities(nil) = %q", got)
	}
}
