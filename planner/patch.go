package planner

import (
	"slices"
	"strings"

	"github.com/syncd/syncd/sinch"
)

// patchFor compares what Sinch holds with what the CRM asks for and returns
// the body and update_mask of the patch that aligns them, naming exactly the
// fields that differ. adopt adds the external_id of a contact taken over.
func patchFor(have sinch.Contact, want Desired, adopt bool) (sinch.Contact, []string, []Change) {
	var body sinch.Contact
	var mask []string
	var changes []Change
	set := func(field, old, new string) {
		mask = append(mask, field)
		changes = append(changes, Change{Field: field, Old: old, New: new})
	}

	// Mask order follows the contact's field order, so that reports and
	// request URLs are stable.
	if ids, ok := identitiesFor(have, want); ok {
		body.ChannelIdentities = ids
		set(sinch.FieldChannelIdentities, sinch.FormatIdentities(have.ChannelIdentities), sinch.FormatIdentities(ids))
	}
	if want.ChannelPriority != nil {
		prio := priorityFor(have, want)
		if !slices.Equal(prio, have.ChannelPriority) {
			body.ChannelPriority = prio
			set(sinch.FieldChannelPriority, strings.Join(have.ChannelPriority, ","), strings.Join(prio, ","))
		}
	}
	if want.DisplayName != nil && !sameDisplayName(have, *want.DisplayName) {
		body.DisplayName = *want.DisplayName
		set(sinch.FieldDisplayName, have.DisplayName, *want.DisplayName)
	}
	if want.Email != nil && canonicalEmail(have.Email) != *want.Email {
		body.Email = *want.Email
		set(sinch.FieldEmail, have.Email, *want.Email)
	}
	if adopt {
		body.ExternalID = want.ExternalID
		set(sinch.FieldExternalID, have.ExternalID, want.ExternalID)
	}
	if want.Language != nil && have.Language != *want.Language {
		body.Language = *want.Language
		set(sinch.FieldLanguage, have.Language, *want.Language)
	}
	if want.Metadata != nil && have.Metadata != *want.Metadata && canonicalMetadata(have.Metadata) != canonicalMetadata(*want.Metadata) {
		body.Metadata = *want.Metadata
		set(sinch.FieldMetadata, have.Metadata, *want.Metadata)
	}
	return body, mask, changes
}

// sameDisplayName treats an empty CRM name as satisfied by the names Sinch
// fills in on its own: its default, and a WhatsApp profile name, which Sinch
// shows again whatever syncd clears.
func sameDisplayName(have sinch.Contact, want string) bool {
	if want == have.DisplayName {
		return true
	}
	if want != "" {
		return false
	}
	if have.DisplayName == sinch.DefaultDisplayName {
		return true
	}
	return slices.ContainsFunc(have.ChannelIdentities, func(id sinch.ChannelIdentity) bool { return id.Channel == "WHATSAPP" })
}

// identitiesFor returns the identity list a patch should send, and whether it
// differs from Sinch's. Identities on channels the record does not manage
// (a MESSENGER id Sinch added, say) are kept after the managed ones.
func identitiesFor(have sinch.Contact, want Desired) ([]sinch.ChannelIdentity, bool) {
	if len(want.Managed) == 0 {
		return nil, false
	}
	if same, ok := sameManagedIdentities(have, want); ok && same {
		return nil, false
	}
	var unmanaged []sinch.ChannelIdentity
	haveKeys := make(map[string]bool, len(have.ChannelIdentities))
	for _, id := range have.ChannelIdentities {
		if slices.Contains(want.Managed, id.Channel) {
			haveKeys[sinch.IdentityKey(id)] = true
		} else {
			unmanaged = append(unmanaged, id)
		}
	}
	same := len(haveKeys) == len(want.Identities)
	for _, id := range want.Identities {
		same = same && haveKeys[sinch.IdentityKey(id)]
	}
	if same {
		return nil, false
	}
	return append(slices.Clone(want.Identities), unmanaged...), true
}

// priorityFor is the CRM's channel order followed by the channels it does not
// manage, in the order Sinch has them.
func priorityFor(have sinch.Contact, want Desired) []string {
	prio := slices.Clone(want.ChannelPriority)
	for _, ch := range have.ChannelPriority {
		if !slices.Contains(prio, ch) && !slices.Contains(want.Managed, ch) {
			prio = append(prio, ch)
		}
	}
	return prio
}

// sameManagedIdentities is the comparison identitiesFor makes, without
// building keys: the identities Sinch holds on the managed channels, as a
// set of identity keys, are exactly the record's. ok is false when an
// identity holds a NUL, which the keys use as separator; the caller then
// compares keys.
func sameManagedIdentities(have sinch.Contact, want Desired) (same, ok bool) {
	for _, id := range have.ChannelIdentities {
		if hasNUL(id) {
			return false, false
		}
	}
	for _, id := range want.Identities {
		if hasNUL(id) {
			return false, false
		}
	}
	distinct := 0
	for j, id := range have.ChannelIdentities {
		if !slices.Contains(want.Managed, id.Channel) {
			continue
		}
		repeat := false
		for _, earlier := range have.ChannelIdentities[:j] {
			if sinch.SameIdentity(earlier, id) && slices.Contains(want.Managed, earlier.Channel) {
				repeat = true
				break
			}
		}
		if !repeat {
			distinct++
		}
	}
	if distinct != len(want.Identities) {
		return false, true
	}
	for _, w := range want.Identities {
		found := false
		for _, id := range have.ChannelIdentities {
			if sinch.SameIdentity(id, w) && slices.Contains(want.Managed, id.Channel) {
				found = true
				break
			}
		}
		if !found {
			return false, true
		}
	}
	return true, true
}

func hasNUL(id sinch.ChannelIdentity) bool {
	return strings.IndexByte(id.Channel, 0) >= 0 || strings.IndexByte(id.Identity, 0) >= 0 || strings.IndexByte(id.AppID, 0) >= 0
}
