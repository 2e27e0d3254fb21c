package sinch

import "strings"

// The one definition of when two channel identities are the same, shared by
// the reconciler (its diff, patches and content hashes) and anything else
// that compares identities: the same channel; on a phone channel the same
// MSISDN whether or not it is written with '+' (Sinch stores it without, the
// CRM side writes E.164 with); and the same app_id where the channel scopes
// identities to an app (IsAppScopedChannel), whatever app_id is sent where it
// does not.

// AppendIdentityKey appends the identity's key to b: equal keys, equal
// identities. Phone numbers appear in E.164 ('+' and the digits), parts are
// separated by NUL bytes. It allocates nothing beyond b.
func AppendIdentityKey(b []byte, id ChannelIdentity) []byte {
	b = append(b, id.Channel...)
	b = append(b, 0)
	if IsPhoneChannel(id.Channel) {
		b = append(b, '+')
		b = append(b, strings.TrimPrefix(strings.TrimSpace(id.Identity), "+")...)
	} else {
		b = append(b, id.Identity...)
	}
	if IsAppScopedChannel(id.Channel) {
		b = append(b, 0)
		b = append(b, id.AppID...)
	}
	return b
}

// IdentityKey is AppendIdentityKey as a string, for maps.
func IdentityKey(id ChannelIdentity) string { return string(AppendIdentityKey(nil, id)) }

// SameIdentity reports whether a and b are the same identity, as
// IdentityKey(a) == IdentityKey(b) would for identities without NUL bytes,
// without building keys.
func SameIdentity(a, b ChannelIdentity) bool {
	if a.Channel != b.Channel {
		return false
	}
	if IsPhoneChannel(a.Channel) {
		if strings.TrimPrefix(strings.TrimSpace(a.Identity), "+") != strings.TrimPrefix(strings.TrimSpace(b.Identity), "+") {
			return false
		}
	} else if a.Identity != b.Identity {
		return false
	}
	return !IsAppScopedChannel(a.Channel) || a.AppID == b.AppID
}

// FormatIdentities is how syncd shows channel identities to a person, the
// same in every report (diff, explain, the journal's changes): "SMS
// +46732000000, MESSENGER 7968425018576406 (app 01E9DQJFPWGZ2N9Z0TEST1234)",
// a phone number in E.164 whether or not it was stored with '+', the app
// of an app-scoped identity after it. "" for none.
func FormatIdentities(ids []ChannelIdentity) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		v := id.Identity
		if IsPhoneChannel(id.Channel) {
			v = "+" + strings.TrimPrefix(strings.TrimSpace(v), "+")
		}
		parts[i] = id.Channel + " " + v
		if id.AppID != "" {
			parts[i] += " (app " + id.AppID + ")"
		}
	}
	return strings.Join(parts, ", ")
}
