package planner

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/sinch"
)

// Desired is a CRM record normalised into the contact it asks for. A nil
// field means the CRM has no opinion and the Sinch value stays as it is.
type Desired struct {
	ExternalID  string
	DisplayName *string
	Email       *string
	Language    *string
	Metadata    *string
	// Identities are the managed identities, phone numbers in E.164 with '+'.
	// Managed lists the channels whose identities the record decides; an
	// identity on any other channel is not syncd's business.
	Identities      []sinch.ChannelIdentity
	Managed         []string
	ChannelPriority []string // nil: no opinion
	Deleted         bool
	// Hash identifies the content, so that an unchanged row can be skipped
	// without asking Sinch.
	Hash string
}

// Rejection is a CRM row (or a contact Sinch refused) that a run skips.
type Rejection struct {
	ExternalID string `json:"external_id"`
	Column     string `json:"column,omitempty"`
	Reason     string `json:"reason"`
}

// same returns p when v is the value it points to, else a pointer to v.
func same(p *string, v string) *string {
	if *p == v {
		return p
	}
	return &v
}

func (r Rejection) String() string {
	if r.Column == "" {
		return r.Reason
	}
	return r.Column + ": " + r.Reason
}

// Normalize turns a CRM row into the contact it asks for, or says why the row
// cannot be synced.
func Normalize(rec crm.Record, opts Options) (Desired, *Rejection) {
	reject := func(column, format string, args ...any) (Desired, *Rejection) {
		return Desired{}, &Rejection{ExternalID: rec.ExternalID, Column: column, Reason: fmt.Sprintf(format, args...)}
	}
	d := Desired{ExternalID: rec.ExternalID, Deleted: rec.Deleted()}
	if strings.TrimSpace(rec.ExternalID) == "" {
		return reject("external_id", "is empty")
	}
	if !opts.Owns(rec.ExternalID) {
		return reject("external_id", "does not start with sync.external_id_prefix %q, so syncd could not own its contact", opts.ExternalIDPrefix)
	}
	if d.Deleted {
		return d, nil
	}

	// Values the normalising leaves as they are share the record's string.
	if rec.DisplayName != nil {
		d.DisplayName = same(rec.DisplayName, strings.TrimSpace(*rec.DisplayName))
	}
	if rec.Email != nil {
		email, err := normalizeEmail(*rec.Email)
		if err != nil {
			return reject("email", "%v", err)
		}
		d.Email = same(rec.Email, email)
	}
	if rec.Language != nil {
		// Sinch cannot hold a contact without a language, so an empty one
		// means the same as NULL: keep what Sinch has, default on create.
		if lang := strings.ToUpper(strings.TrimSpace(*rec.Language)); lang != "" {
			if !slices.Contains(sinch.Languages, lang) {
				return reject("language", "%q is not a Sinch language code", *rec.Language)
			}
			d.Language = same(rec.Language, lang)
		}
	}
	if rec.Metadata != nil {
		// A jsonb column reads back spaced ({"a": 1}); Sinch is sent, and
		// measures, the compact form.
		meta := compactMetadata(*rec.Metadata)
		if n := utf8.RuneCountInString(meta); n > sinch.MaxMetadataLength {
			return reject("metadata", "is %d characters long, Sinch stores at most %d", n, sinch.MaxMetadataLength)
		}
		d.Metadata = same(rec.Metadata, meta)
	}

	if rec.Phone != nil {
		// Shared with opts, capped so that an append copies.
		d.Managed = opts.PhoneChannels[:len(opts.PhoneChannels):len(opts.PhoneChannels)]
		if phone := strings.TrimSpace(*rec.Phone); phone != "" {
			e164, err := NormalizePhone(phone, opts.DefaultRegion)
			if err != nil {
				return reject("phone", "%v", err)
			}
			d.Identities = make([]sinch.ChannelIdentity, 0, len(opts.PhoneChannels))
			for _, ch := range opts.PhoneChannels {
				d.Identities = append(d.Identities, sinch.ChannelIdentity{Channel: ch, Identity: e164})
			}
		}
	}
	if rec.ChannelIdentities != nil {
		extra, err := parseIdentities(rec.ChannelIdentities, opts.DefaultRegion)
		if err != nil {
			return reject("channel_identities", "%v", err)
		}
		for _, id := range extra {
			if !slices.Contains(d.Managed, id.Channel) {
				d.Managed = append(d.Managed, id.Channel)
			}
			if !slices.ContainsFunc(d.Identities, func(have sinch.ChannelIdentity) bool { return sinch.SameIdentity(have, id) }) {
				d.Identities = append(d.Identities, id)
			}
		}
	}
	if len(d.Identities) == 0 {
		return reject("phone", "the record has no channel identity (phone and channel_identities are both empty), and a Sinch contact needs one")
	}
	if rec.ChannelPriority != nil {
		d.ChannelPriority = []string{}
		for _, ch := range rec.ChannelPriority {
			ch = strings.ToUpper(strings.TrimSpace(ch))
			if !slices.Contains(sinch.Channels, ch) {
				return reject("channel_priority", "%q is not a Sinch channel", ch)
			}
			if !slices.Contains(d.ChannelPriority, ch) {
				d.ChannelPriority = append(d.ChannelPriority, ch)
			}
		}
	}
	d.Hash = d.hash()
	return d, nil
}

// NormalizePhone parses a phone number written in any common way and returns
// it in E.164. Numbers without a country code need a default region.
func NormalizePhone(raw, defaultRegion string) (string, error) {
	// The parser reads letters as a keypad would (vanity numbers); in a CRM
	// they are typos.
	if fastE164(raw) {
		return raw, nil
	}
	if strings.IndexFunc(raw, unicode.IsLetter) >= 0 {
		return "", fmt.Errorf("%q is not a phone number: it contains letters", raw)
	}
	region := defaultRegion
	if region == "" {
		region = "ZZ" // unknown: only the '+' form parses
	}
	num, err := phonenumbers.Parse(raw, region)
	if err != nil {
		if defaultRegion == "" && !strings.HasPrefix(strings.TrimSpace(raw), "+") {
			return "", fmt.Errorf("%q has no country code and sync.default_region is not set", raw)
		}
		return "", fmt.Errorf("%q is not a phone number: %v", raw, err)
	}
	if !phonenumbers.IsPossibleNumber(num) {
		return "", fmt.Errorf("%q is not a possible phone number", raw)
	}
	return phonenumbers.Format(num, phonenumbers.E164), nil
}

func parseIdentities(raw []byte, defaultRegion string) ([]sinch.ChannelIdentity, error) {
	var ids []sinch.ChannelIdentity
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ids); err != nil {
		return nil, fmt.Errorf("is not a JSON array of {\"channel\",\"identity\",\"app_id\"}: %v", err)
	}
	for i, id := range ids {
		id.Channel = strings.ToUpper(strings.TrimSpace(id.Channel))
		id.Identity = strings.TrimSpace(id.Identity)
		id.AppID = strings.TrimSpace(id.AppID)
		switch {
		case !slices.Contains(sinch.Channels, id.Channel):
			return nil, fmt.Errorf("item %d: %q is not a Sinch channel", i, id.Channel)
		case id.Identity == "":
			return nil, fmt.Errorf("item %d: identity is empty", i)
		case sinch.IsAppScopedChannel(id.Channel) && id.AppID == "":
			return nil, fmt.Errorf("item %d: channel %s needs an app_id", i, id.Channel)
		}
		if sinch.IsPhoneChannel(id.Channel) {
			e164, err := NormalizePhone(id.Identity, defaultRegion)
			if err != nil {
				return nil, fmt.Errorf("item %d: %v", i, err)
			}
			id.Identity = e164
		}
		if !sinch.IsAppScopedChannel(id.Channel) {
			id.AppID = ""
		}
		ids[i] = id
	}
	return ids, nil
}

func normalizeEmail(raw string) (string, error) {
	email := strings.TrimSpace(raw)
	if email == "" {
		return "", nil
	}
	if plainEmail(email) {
		return canonicalEmail(email), nil
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || addr.Name != "" {
		return "", fmt.Errorf("%q is not a plain e-mail address", raw)
	}
	return canonicalEmail(email), nil
}

// canonicalEmail lower-cases the domain, which is case-insensitive; the local
// part is left alone because mail servers may treat it case-sensitively.
func canonicalEmail(email string) string {
	email = strings.TrimSpace(email)
	at := strings.LastIndexByte(email, '@')
	if at < 0 || lowerASCII(email[at+1:]) {
		return email
	}
	return email[:at+1] + strings.ToLower(email[at+1:])
}

// compactMetadata is metadata that is a JSON object or array without the
// white space between its tokens, keys and numbers as written; anything else
// is left as it is.
func compactMetadata(meta string) string {
	trimmed := strings.TrimSpace(meta)
	if trimmed == "" || (trimmed[0] != '{' && trimmed[0] != '[') {
		return meta
	}
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(trimmed)); err != nil {
		return meta
	}
	if b.Len() == len(meta) {
		return meta // already compact: share the record's string
	}
	return b.String()
}

// canonicalMetadata makes two JSON spellings of one value compare equal;
// metadata that is not JSON compares as text.
func canonicalMetadata(meta string) string {
	trimmed := strings.TrimSpace(meta)
	if trimmed == "" || (trimmed[0] != '{' && trimmed[0] != '[') {
		return meta
	}
	var v any
	dec := json.NewDecoder(strings.NewReader(trimmed))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil || dec.More() {
		return meta
	}
	out, err := json.Marshal(v)
	if err != nil {
		return meta
	}
	return string(out)
}
