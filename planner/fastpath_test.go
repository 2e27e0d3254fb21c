package planner

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/mail"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/sinch"
)

// slowPhone is NormalizePhone without the fast path.
func slowPhone(raw, region string) (string, error) {
	if region == "" {
		region = "ZZ"
	}
	num, err := phonenumbers.Parse(raw, region)
	if err != nil || !phonenumbers.IsPossibleNumber(num) {
		return "", fmt.Errorf("rejected")
	}
	return phonenumbers.Format(num, phonenumbers.E164), nil
}

// TestFastE164MatchesParser checks that every number the fast path accepts
// is one the parser accepts and returns unchanged: every calling code, with
// every two-digit start and lengths from too short to too long, and random
// digit strings.
func TestFastE164MatchesParser(t *testing.T) {
	check := func(raw string) {
		t.Helper()
		if !fastE164(raw) {
			return
		}
		for _, region := range []string{"", "SE", "US", "IT"} {
			got, err := slowPhone(raw, region)
			if err != nil || got != raw {
				t.Fatalf("fast path accepts %q as is, the parser (region %q) gives %q, %v", raw, region, got, err)
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	digits := func(n int) string {
		var sb strings.Builder
		for range n {
			sb.WriteByte(byte('0' + rng.IntN(10)))
		}
		return sb.String()
	}
	accepted := 0
	for cc := range phonenumbers.GetSupportedCallingCodes() {
		for start := 0; start < 100; start += 7 {
			for n := 0; n <= 16; n++ {
				raw := fmt.Sprintf("+%d%02d%s", cc, start, digits(n))
				check(raw)
				if fastE164(raw) {
					accepted++
				}
			}
		}
	}
	for range 50_000 {
		check("+" + digits(4+rng.IntN(14)))
	}
	if accepted < 1_000 {
		t.Fatalf("the fast path accepted only %d numbers: it hardly ever applies", accepted)
	}
	for _, raw := range []string{"+46701234567", "+14155550100", "+447911123456", "+390612345678", "+4407911123456"} {
		check(raw)
	}
	if !fastE164("+46701234567") {
		t.Fatal("a Swedish mobile in E.164 misses the fast path")
	}
}

// TestPlainEmailMatchesParser checks that an address the fast path accepts
// is one net/mail accepts as exactly that address with no name.
func TestPlainEmailMatchesParser(t *testing.T) {
	alphabet := "aZ09.-_+@!#$%&'*/=?^`{|}~ \"(),:;<>[\\]é"
	rng := rand.New(rand.NewPCG(3, 4))
	check := func(s string) {
		if !plainEmail(s) {
			return
		}
		addr, err := mail.ParseAddress(s)
		if err != nil || addr.Address != s || addr.Name != "" {
			t.Fatalf("fast path accepts %q, net/mail gives %+v, %v", s, addr, err)
		}
	}
	for range 100_000 {
		var sb strings.Builder
		for range 1 + rng.IntN(12) {
			sb.WriteString(string([]rune(alphabet)[rng.IntN(len([]rune(alphabet)))]))
		}
		check(sb.String())
		check("a" + sb.String() + "@example.com")
		check("user@" + sb.String())
	}
	for _, s := range []string{"a@b", "a.b@c.d", "first.last+tag@sub.example.co.uk", "x@EXAMPLE.com"} {
		if !plainEmail(s) {
			t.Errorf("plainEmail(%q) = false", s)
		}
		check(s)
	}
}

// legacyHash is Desired.hash as first written; stored links carry its
// values, so the faster one must give the same.
func legacyHash(d Desired) string {
	h := sha256.New()
	field := func(p *string) {
		if p == nil {
			h.Write([]byte{0})
			return
		}
		h.Write([]byte{1})
		h.Write([]byte(*p))
		h.Write([]byte{0})
	}
	field(&d.ExternalID)
	field(d.DisplayName)
	field(d.Email)
	field(d.Language)
	if d.Metadata != nil {
		meta := canonicalMetadata(*d.Metadata)
		field(&meta)
	} else {
		field(nil)
	}
	for _, id := range d.Identities {
		key := sinch.IdentityKey(id)
		field(&key)
	}
	h.Write([]byte{2})
	for _, ch := range d.Managed {
		field(&ch)
	}
	h.Write([]byte{3})
	if d.ChannelPriority != nil {
		for _, ch := range d.ChannelPriority {
			field(&ch)
		}
	} else {
		field(nil)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func TestHashUnchanged(t *testing.T) {
	s := func(v string) *string { return &v }
	opts := DefaultOptions()
	for i, rec := range []crm.Record{
		{ExternalID: "crm-1", Phone: s("+46701234567")},
		{ExternalID: "crm-2", DisplayName: s(" Ada "), Email: s("a@EXAMPLE.com"), Phone: s("+46 70 123 45 67"), Language: s("sv"),
			Metadata: s(`{"b": 1, "a": [1, 2]}`), ChannelPriority: []string{"sms", "WHATSAPP"},
			ChannelIdentities: []byte(`[{"channel":"MESSENGER","identity":"m1","app_id":"APP"},{"channel":"VIBERBM","identity":"+46701234568"}]`)},
		{ExternalID: "crm-3", DisplayName: s(""), Email: s(""), Phone: s(""), Metadata: s("plain"), ChannelPriority: []string{},
			ChannelIdentities: []byte(`[{"channel":"TELEGRAM","identity":"t1"}]`)},
	} {
		d, rej := Normalize(rec, opts)
		if rej != nil {
			t.Fatalf("record %d: %v", i, rej)
		}
		if d.Hash != legacyHash(d) {
			t.Errorf("record %d: hash %s, was %s", i, d.Hash, legacyHash(d))
		}
	}
}
