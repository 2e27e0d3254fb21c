package planner

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
	stdsync "sync"

	"github.com/nyaruka/phonenumbers"

	"github.com/syncd/syncd/sinch"
)

// The fast paths in this file give exactly what the general code gives, for
// the inputs a CRM nearly always holds, at a fraction of the cost: a full
// run normalises every row, and the phone parser alone costs ~10µs a number.
// Anything outside the common shape takes the general path.

// countryMeta is what parsing an E.164 number needs from one country
// calling code's metadata.
type countryMeta struct {
	known bool // a calling code the parser knows
	geo   bool // of a region, not a non-geographic entity (which takes the general path)
	// nationalPrefix is ^(?:national_prefix_for_parsing), nil when the
	// country has none.
	nationalPrefix *regexp.Regexp
	// possible[n]: a national number of n digits without a leading zero
	// is a possible number. The parser's answer depends on the calling code
	// and the length alone, so it is asked once per length.
	possible [phonenumbers.MAX_LENGTH_FOR_NSN + 1]bool
}

// phoneMeta is indexed by calling code (at most three digits).
var phoneMeta = stdsync.OnceValue(func() *[1000]countryMeta {
	out := new([1000]countryMeta)
	coll, err := phonenumbers.MetadataCollection()
	if err != nil {
		return out // no fast path: every number goes to the parser
	}
	byRegion := make(map[string]*phonenumbers.PhoneMetadata, len(coll.GetMetadata()))
	for _, m := range coll.GetMetadata() {
		byRegion[m.GetId()] = m
	}
	for cc := range phonenumbers.GetSupportedCallingCodes() {
		if cc <= 0 || cc >= len(out) {
			continue
		}
		cm := &out[cc]
		cm.known = true
		// The parser reads national prefixes with the metadata of the
		// country code's main region.
		m := byRegion[phonenumbers.GetRegionCodeForCountryCode(cc)]
		if m == nil || m.GetCountryCode() != int32(cc) {
			continue
		}
		if p := m.GetNationalPrefixForParsing(); p != "" {
			re, err := regexp.Compile("^(?:" + p + ")")
			if err != nil {
				continue
			}
			cm.nationalPrefix = re
		}
		cc32 := int32(cc)
		for n := phonenumbers.MIN_LENGTH_FOR_NSN; n <= phonenumbers.MAX_LENGTH_FOR_NSN; n++ {
			nn := uint64(1)
			for range n - 1 {
				nn *= 10
			}
			cm.possible[n] = phonenumbers.IsPossibleNumber(&phonenumbers.PhoneNumber{CountryCode: &cc32, NationalNumber: &nn})
		}
		cm.geo = true
	}
	return out
})

// fastE164 recognises a number already in E.164 ('+' and digits only) that
// the parser would return unchanged, without running the parser: it takes
// the country code as the parser does (the shortest prefix that is a
// calling code), and declines whenever the parser could rewrite the rest (a
// national prefix it might strip, a leading zero) or reject the number.
func fastE164(raw string) bool {
	if len(raw) < 5 || len(raw) > 1+phonenumbers.MAX_LENGTH_COUNTRY_CODE+phonenumbers.MAX_LENGTH_FOR_NSN ||
		raw[0] != '+' || raw[1] == '0' {
		return false
	}
	for i := 1; i < len(raw); i++ {
		if raw[i] < '0' || raw[i] > '9' {
			return false
		}
	}
	digits := raw[1:]
	meta := phoneMeta()
	cc := 0
	for n := 1; n <= phonenumbers.MAX_LENGTH_COUNTRY_CODE && n < len(digits); n++ {
		cc = cc*10 + int(digits[n-1]-'0')
		cm := &meta[cc]
		if !cm.known {
			continue
		}
		national := digits[n:]
		if !cm.geo || len(national) <= phonenumbers.MIN_LENGTH_FOR_NSN || len(national) > phonenumbers.MAX_LENGTH_FOR_NSN ||
			national[0] == '0' || (cm.nationalPrefix != nil && cm.nationalPrefix.MatchString(national)) {
			return false
		}
		return cm.possible[len(national)]
	}
	return false
}

// plainEmail recognises an address that net/mail.ParseAddress accepts and
// returns unchanged with no display name: ASCII dot-atoms on both sides of
// one '@'.
func plainEmail(s string) bool {
	at := strings.IndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return false
	}
	return dotAtom(s[:at], isAtext) && dotAtom(s[at+1:], isDomainChar)
}

func dotAtom(s string, ok func(byte) bool) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '.' {
			if s[i-1] == '.' {
				return false
			}
			continue
		}
		if !ok(c) {
			return false
		}
	}
	return true
}

func isDomainChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-'
}

func isAtext(c byte) bool {
	return isDomainChar(c) || strings.IndexByte("!#$%&'*+/=?^_`{|}~", c) >= 0
}

// lowerASCII reports whether s is ASCII without capitals, so that
// strings.ToLower(s) == s.
func lowerASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x80 || ('A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// hashPool holds the buffers Desired.hash writes its input into.
var hashPool = stdsync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (d Desired) hash() string {
	bp := hashPool.Get().(*[]byte)
	b := (*bp)[:0]
	field := func(p *string) {
		if p == nil {
			b = append(b, 0)
			return
		}
		b = append(b, 1)
		b = append(b, *p...)
		b = append(b, 0)
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
		b = append(b, 1)
		b = sinch.AppendIdentityKey(b, id)
		b = append(b, 0)
	}
	b = append(b, 2)
	for _, ch := range d.Managed {
		field(&ch)
	}
	b = append(b, 3)
	if d.ChannelPriority != nil {
		for _, ch := range d.ChannelPriority {
			field(&ch)
		}
	} else {
		field(nil)
	}
	sum := sha256.Sum256(b)
	*bp = b
	hashPool.Put(bp)
	var out [32]byte
	hex.Encode(out[:], sum[:16])
	return string(out[:])
}
