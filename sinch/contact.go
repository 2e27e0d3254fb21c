package sinch

import (
	"slices"
	"strings"
)

// ChannelIdentity is one address of a contact on one channel. For SMS,
// WHATSAPP, VIBERBM, RCS and MMS the identity is the MSISDN, which Sinch
// answers with the leading '+' stripped.
type ChannelIdentity struct {
	Channel  string `json:"channel"`
	Identity string `json:"identity"`
	AppID    string `json:"app_id,omitempty"`
}

// Contact is the Conversation API contact resource. Sinch answers with empty
// values rather than leaving fields out, so empty, missing and [] all mean
// "not set". Fields are omitted when empty on the way out, which is also how a
// PATCH clears a field named in its update_mask.
type Contact struct {
	ID                string            `json:"id,omitempty"`
	ChannelIdentities []ChannelIdentity `json:"channel_identities,omitempty"`
	ChannelPriority   []string          `json:"channel_priority,omitempty"`
	DisplayName       string            `json:"display_name,omitempty"`
	Email             string            `json:"email,omitempty"`
	ExternalID        string            `json:"external_id,omitempty"`
	Language          string            `json:"language,omitempty"`
	Metadata          string            `json:"metadata,omitempty"`
}

// Field paths accepted in an update_mask: the contact's JSON field names.
const (
	FieldChannelIdentities = "channel_identities"
	FieldChannelPriority   = "channel_priority"
	FieldDisplayName       = "display_name"
	FieldEmail             = "email"
	FieldExternalID        = "external_id"
	FieldLanguage          = "language"
	FieldMetadata          = "metadata"
)

// MaxPageSize is the largest page the list endpoint returns.
const MaxPageSize = 20

// MaxMetadataLength is the longest metadata string Sinch stores.
const MaxMetadataLength = 1024

// LanguageUnspecified may come back from Sinch; it is never sent on create.
const LanguageUnspecified = "UNSPECIFIED"

// Languages lists the ContactLanguage codes Sinch accepts.
var Languages = []string{
	"AF", "SQ", "AR", "AZ", "BN", "BG", "CA", "ZH", "ZH_CN", "ZH_HK", "ZH_TW", "HR", "CS",
	"DA", "NL", "EN", "EN_GB", "EN_US", "ET", "FIL", "FI", "FR", "DE", "EL", "GU", "HA", "HE", "HI", "HU", "ID", "GA", "IT", "JA", "KN", "KK", "KO", "LO",
	"LV", "LT", "MK", "MS", "ML", "MR", "NB", "FA", "PL", "PT", "PT_BR", "PT_PT", "PA", "RO", "RU", "SR", "SK", "SL", "ES", "ES_AR", "ES_ES",
	"ES_MX", "SW", "SV", "TA", "TE", "TH", "TR", "UK", "UR", "UZ", "VI", "ZU",
}

// Channels lists the conversation channels a contact identity may use.
var Channels = []string{
	"WHATSAPP", "RCS", "SMS", "MESSENGER", "VIBERBM", "MMS", "INSTAGRAM", "TELEGRAM",
	"KAKAOTALK", "KAKAOTALKCHAT", "LINE", "WECHAT", "APPLEBC", "VIBER",
}

// IsPhoneChannel reports whether the channel's identity is an MSISDN.
func IsPhoneChannel(channel string) bool {
	switch channel {
	case "SMS", "WHATSAPP", "VIBERBM", "RCS", "MMS":
		return true
	}
	return false
}

// IsAppScopedChannel reports whether identities on the channel need an
// app_id. VIBER is the Viber Bot channel, whose ids belong to one app, unlike
// VIBERBM (Viber Business Messages), which uses the phone number.
func IsAppScopedChannel(channel string) bool {
	switch channel {
	case "MESSENGER", "INSTAGRAM", "LINE", "WECHAT", "VIBER":
		return true
	}
	return false
}

// IsValidLanguage reports whether code is a ContactLanguage Sinch accepts on
// create. UNSPECIFIED is not: Sinch may answer with it but rejects it.
func IsValidLanguage(code string) bool { return slices.Contains(Languages, code) }

// IsValidChannel reports whether channel is one of Channels.
func IsValidChannel(channel string) bool { return slices.Contains(Channels, channel) }

// NormalizeIdentity returns identity as Sinch stores it: MSISDNs on phone
// channels lose their leading '+', other identities are kept as sent. Compare
// identities only after normalising both sides.
func NormalizeIdentity(channel, identity string) string {
	if IsPhoneChannel(channel) {
		return strings.TrimPrefix(identity, "+")
	}
	return identity
}
