package sinchtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/syncd/syncd/sinch"
)

const defaultPageSize = 10

// wireIdentity and wireContact are the answer shapes: Sinch sends empty
// values rather than leaving fields out, hence no omitempty.
type wireIdentity struct {
	Channel  string `json:"channel"`
	Identity string `json:"identity"`
	AppID    string `json:"app_id"`
}

type wireContact struct {
	ID                string         `json:"id"`
	ChannelIdentities []wireIdentity `json:"channel_identities"`
	ChannelPriority   []string       `json:"channel_priority"`
	DisplayName       string         `json:"display_name"`
	Email             string         `json:"email"`
	ExternalID        string         `json:"external_id"`
	Language          string         `json:"language"`
	Metadata          string         `json:"metadata"`
}

// written is the answer of a create or an update: the contact, and the
// identities the write left shared with other contacts, which only the
// callbacks carry.
type written struct {
	wireContact
	dups []DuplicatedIdentity
}

type wireList struct {
	Contacts      []wireContact `json:"contacts"`
	NextPageToken string        `json:"next_page_token"`
}

func toWire(c sinch.Contact) wireContact {
	w := wireContact{
		ID:                c.ID,
		ChannelIdentities: make([]wireIdentity, 0, len(c.ChannelIdentities)),
		ChannelPriority:   append([]string{}, c.ChannelPriority...),
		DisplayName:       c.DisplayName,
		Email:             c.Email,
		ExternalID:        c.ExternalID,
		Language:          c.Language,
		Metadata:          c.Metadata,
	}
	for _, ci := range c.ChannelIdentities {
		w.ChannelIdentities = append(w.ChannelIdentities, wireIdentity(ci))
	}
	return w
}

// normalize stores a contact the way Sinch does: MSISDNs without '+', an
// empty display name as "Unknown", an empty language as UNSPECIFIED.
func normalize(c sinch.Contact) sinch.Contact {
	c = clone(c)
	for i, ci := range c.ChannelIdentities {
		c.ChannelIdentities[i].Identity = sinch.NormalizeIdentity(ci.Channel, ci.Identity)
	}
	if c.DisplayName == "" {
		c.DisplayName = sinch.DefaultDisplayName
	}
	if c.Language == "" {
		c.Language = sinch.LanguageUnspecified
	}
	return c
}

// validate checks a contact about to be stored. A create needs a real
// language; an update may leave it UNSPECIFIED, as Sinch itself does.
func validate(c sinch.Contact, creating bool) error {
	if len(c.ChannelIdentities) == 0 {
		return errors.New("channel_identities must contain at least one item")
	}
	for i, ci := range c.ChannelIdentities {
		switch {
		case !sinch.IsValidChannel(ci.Channel):
			return fmt.Errorf("channel_identities[%d].channel: invalid value %q", i, ci.Channel)
		case ci.Identity == "":
			return fmt.Errorf("channel_identities[%d].identity is required", i)
		case sinch.IsAppScopedChannel(ci.Channel) && ci.AppID == "":
			return fmt.Errorf("channel_identities[%d].app_id is required for channel %s", i, ci.Channel)
		}
	}
	for i, ch := range c.ChannelPriority {
		if !sinch.IsValidChannel(ch) {
			return fmt.Errorf("channel_priority[%d]: invalid value %q", i, ch)
		}
	}
	switch {
	case creating && c.Language == "":
		return errors.New("language is required")
	case creating && c.Language == sinch.LanguageUnspecified:
		return errors.New("language must not be UNSPECIFIED")
	case c.Language != "" && c.Language != sinch.LanguageUnspecified && !sinch.IsValidLanguage(c.Language):
		return fmt.Errorf("language: invalid value %q", c.Language)
	}
	if n := utf8.RuneCountInString(c.Metadata); n > sinch.MaxMetadataLength {
		return fmt.Errorf("metadata is %d characters long, at most %d allowed", n, sinch.MaxMetadataLength)
	}
	return nil
}

// decodeStrict reads a JSON body, refusing unknown fields and trailing data.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON body: %v", err)
	}
	if dec.More() {
		return errors.New("invalid JSON body: trailing data")
	}
	return nil
}

func invalid(err error) (int, any) {
	return errorBody(http.StatusBadRequest, "INVALID_ARGUMENT", err.Error())
}

func notFound(what, id string) (int, any) {
	return errorBody(http.StatusNotFound, "NOT_FOUND", what+" "+id+" not found")
}

func (e *Emulator) create(body []byte) (int, any) {
	var in sinch.Contact
	if err := decodeStrict(body, &in); err != nil {
		return invalid(err)
	}
	if err := validate(in, true); err != nil {
		return invalid(err)
	}
	c := normalize(in)
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.refused(c); err != nil {
		return invalid(err)
	}
	c = e.unify(sinch.Contact{}, c)
	c.ID = e.newID()
	e.store(c)
	return http.StatusOK, written{toWire(c), e.duplicated(sinch.Contact{}, c)}
}

func (e *Emulator) get(id string) (int, any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.refuseRead != nil {
		if err := e.refuseRead(id); err != nil {
			return invalid(err)
		}
	}
	c, ok := e.contacts[id]
	if !ok {
		return notFound("contact", id)
	}
	return http.StatusOK, toWire(c)
}

func (e *Emulator) delete(id string) (int, any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.contacts[id]; !ok {
		return notFound("contact", id)
	}
	e.remove(id)
	return http.StatusOK, struct{}{}
}

// maskable lists the update_mask paths and how each copies its field.
var maskable = map[string]func(dst *sinch.Contact, src sinch.Contact){
	sinch.FieldChannelIdentities: func(d *sinch.Contact, s sinch.Contact) { d.ChannelIdentities = s.ChannelIdentities },
	sinch.FieldChannelPriority:   func(d *sinch.Contact, s sinch.Contact) { d.ChannelPriority = s.ChannelPriority },
	sinch.FieldDisplayName:       func(d *sinch.Contact, s sinch.Contact) { d.DisplayName = s.DisplayName },
	sinch.FieldEmail:             func(d *sinch.Contact, s sinch.Contact) { d.Email = s.Email },
	sinch.FieldExternalID:        func(d *sinch.Contact, s sinch.Contact) { d.ExternalID = s.ExternalID },
	sinch.FieldLanguage:          func(d *sinch.Contact, s sinch.Contact) { d.Language = s.Language },
	sinch.FieldMetadata:          func(d *sinch.Contact, s sinch.Contact) { d.Metadata = s.Metadata },
}

// parseMask reads update_mask given as one comma-joined parameter (what the
// SDKs send) or repeated.
func parseMask(values []string) ([]string, error) {
	var paths []string
	for _, v := range values {
		for p := range strings.SplitSeq(v, ",") {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			if _, ok := maskable[p]; !ok {
				return nil, fmt.Errorf("update_mask: unknown field path %q", p)
			}
			paths = append(paths, p)
		}
	}
	return paths, nil
}

// presentPaths is the implied mask of a PATCH without update_mask: every
// field the body sets.
func presentPaths(c sinch.Contact) []string {
	var paths []string
	for p, set := range map[string]bool{
		sinch.FieldChannelIdentities: len(c.ChannelIdentities) > 0,
		sinch.FieldChannelPriority:   len(c.ChannelPriority) > 0,
		sinch.FieldDisplayName:       c.DisplayName != "",
		sinch.FieldEmail:             c.Email != "",
		sinch.FieldExternalID:        c.ExternalID != "",
		sinch.FieldLanguage:          c.Language != "",
		sinch.FieldMetadata:          c.Metadata != "",
	} {
		if set {
			paths = append(paths, p)
		}
	}
	return paths
}

// update changes only the masked fields; a masked field absent from the body
// is cleared. The result must still be a valid contact.
func (e *Emulator) update(id string, q url.Values, body []byte) (int, any) {
	mask, err := parseMask(q["update_mask"])
	if err != nil {
		return invalid(err)
	}
	var in sinch.Contact
	if err := decodeStrict(body, &in); err != nil {
		return invalid(err)
	}
	if _, given := q["update_mask"]; !given {
		mask = presentPaths(in)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	cur, ok := e.contacts[id]
	if !ok {
		return notFound("contact", id)
	}
	next := clone(cur)
	for _, p := range mask {
		maskable[p](&next, in)
	}
	if err := validate(next, false); err != nil {
		return invalid(err)
	}
	next = normalize(next)
	if err := e.refused(next); err != nil {
		return invalid(err)
	}
	next = e.unify(cur, next)
	e.store(next)
	return http.StatusOK, written{toWire(next), e.duplicated(cur, next)}
}

type mergeBody struct {
	SourceID string `json:"source_id"`
	Strategy string `json:"strategy"`
}

// merge keeps the destination. It gains the source's identities only on
// channels it lacks, those channels go to the bottom of its priority, and
// the source's optional fields fill only its empty ones. The source is gone.
func (e *Emulator) merge(destID string, body []byte) (int, any) {
	var in mergeBody
	if err := decodeStrict(body, &in); err != nil {
		return invalid(err)
	}
	switch {
	case in.SourceID == "":
		return invalid(errors.New("source_id is required"))
	case in.Strategy != "" && in.Strategy != "MERGE":
		return invalid(fmt.Errorf("strategy: invalid value %q", in.Strategy))
	case in.SourceID == destID:
		return invalid(errors.New("a contact cannot be merged into itself"))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	dest, ok := e.contacts[destID]
	if !ok {
		return notFound("destination contact", destID)
	}
	src, ok := e.contacts[in.SourceID]
	if !ok {
		return notFound("source contact", in.SourceID)
	}
	merged := e.unify(dest, normalize(sinch.Merged(dest, src)))
	e.remove(src.ID)
	e.store(merged)
	return http.StatusOK, toWire(merged)
}

// list pages through contacts in id order. Page tokens are opaque to
// clients; inside they carry the last id served and a digest of the
// filter, so a token cannot be replayed against another filter.
func (e *Emulator) list(q url.Values) (int, any) {
	size := defaultPageSize
	if v := q.Get("page_size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return invalid(fmt.Errorf("page_size: invalid value %q", v))
		}
		if n > 0 {
			size = min(n, sinch.MaxPageSize)
		}
	}
	ext, channel, identity := q.Get("external_id"), q.Get("channel"), q.Get("identity")
	switch {
	case ext != "" && (channel != "" || identity != ""):
		return invalid(errors.New("external_id cannot be combined with channel and identity"))
	case (channel == "") != (identity == ""):
		return invalid(errors.New("channel and identity must be given together"))
	case channel != "" && !sinch.IsValidChannel(channel):
		return invalid(fmt.Errorf("channel: invalid value %q", channel))
	}
	filter := filterDigest(ext, channel, identity)
	after := ""
	if tok := q.Get("page_token"); tok != "" {
		var ok bool
		if after, ok = decodePageToken(tok, filter); !ok {
			return invalid(errors.New("page_token is invalid"))
		}
	}
	matches := func(c sinch.Contact) bool {
		switch {
		case ext != "":
			return c.ExternalID == ext
		case channel != "":
			// Matched as stored: a number with its '+' finds nothing.
			return slices.ContainsFunc(c.ChannelIdentities, func(ci sinch.ChannelIdentity) bool {
				return ci.Channel == channel && ci.Identity == identity
			})
		}
		return true
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	// The filters are indexed; without one, every contact is a candidate.
	candidates := e.ids
	switch {
	case ext != "":
		candidates = e.byExternal[ext]
	case channel != "":
		candidates = e.byIdentity[identityIndexKey(channel, identity)]
	}
	out := wireList{Contacts: []wireContact{}}
	if e.shifting {
		// The token is a position among the matches as they are now.
		skip := 0
		if after != "" {
			n, err := strconv.Atoi(after)
			if err != nil || n < 0 {
				return invalid(errors.New("page_token is invalid"))
			}
			skip = n
		}
		served := 0
		for _, id := range candidates {
			c, ok := e.contacts[id]
			if !ok || !matches(c) {
				continue
			}
			if served++; served <= skip {
				continue
			}
			if len(out.Contacts) == size {
				out.NextPageToken = encodePageToken(strconv.Itoa(skip+size), filter)
				break
			}
			out.Contacts = append(out.Contacts, toWire(c))
		}
		if e.emptyLast && out.NextPageToken == "" && len(out.Contacts) > 0 {
			out.NextPageToken = encodePageToken(strconv.Itoa(skip+len(out.Contacts)), filter)
		}
		return http.StatusOK, out
	}
	start, found := slices.BinarySearch(candidates, after)
	if found {
		start++
	}
	for _, id := range candidates[start:] {
		c, ok := e.contacts[id]
		if !ok || !matches(c) {
			continue // removed, or indexed under an identity it no longer has
		}
		if len(out.Contacts) == size {
			// One more match exists: there is a next page.
			out.NextPageToken = encodePageToken(out.Contacts[size-1].ID, filter)
			break
		}
		out.Contacts = append(out.Contacts, toWire(c))
	}
	if e.emptyLast && out.NextPageToken == "" && len(out.Contacts) > 0 {
		// The next page will be empty, and the last.
		out.NextPageToken = encodePageToken(out.Contacts[len(out.Contacts)-1].ID, filter)
	}
	return http.StatusOK, out
}

func filterDigest(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:6])
}

func encodePageToken(afterID, filter string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("v1|" + filter + "|" + afterID))
}

func decodePageToken(tok, filter string) (string, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return "", false
	}
	after, ok := strings.CutPrefix(string(raw), "v1|"+filter+"|")
	return after, ok && after != ""
}
