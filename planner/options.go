package planner

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nyaruka/phonenumbers"

	"github.com/syncd/syncd/sinch"
)

// DeletePolicy says what happens to an owned contact whose CRM record is
// deleted or gone.
type DeletePolicy string

const (
	DeletePolicyDelete DeletePolicy = "delete" // delete the contact
	DeletePolicyUnlink DeletePolicy = "unlink" // keep it, clear its external_id
	DeletePolicyIgnore DeletePolicy = "ignore" // leave it alone
)

// Options are the reconciling rules that come from the sync section of the
// configuration.
type Options struct {
	// PhoneChannels are the channels on which a record's phone becomes an
	// identity.
	PhoneChannels []string
	// DefaultLanguage is sent on create when the record has no language,
	// because Sinch requires one.
	DefaultLanguage string
	// DefaultRegion (ISO 3166 code such as "SE") parses phone numbers written
	// without a country code; empty requires the '+' form.
	DefaultRegion string
	// ExternalIDPrefix scopes what syncd owns: only contacts whose
	// external_id starts with it are ever patched, merged or deleted.
	ExternalIDPrefix string
	DeletePolicy     DeletePolicy
	// MaxDeletes and MaxDeleteFraction (of owned contacts) bound the deletes
	// of one run unless AllowMassDelete is set.
	MaxDeletes        int
	MaxDeleteFraction float64
	AllowMassDelete   bool
}

// DefaultOptions returns the rules syncd uses when the configuration is
// silent.
func DefaultOptions() Options {
	return Options{
		PhoneChannels:     []string{"SMS", "WHATSAPP"},
		DefaultLanguage:   "EN_US",
		DeletePolicy:      DeletePolicyDelete,
		MaxDeletes:        100,
		MaxDeleteFraction: 0.1,
	}
}

// Validate reports every rule that Sinch or syncd could not work with.
func (o Options) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(o.PhoneChannels) == 0 {
		bad("sync.phone_channels: at least one channel is required")
	}
	for _, ch := range o.PhoneChannels {
		if !sinch.IsPhoneChannel(ch) {
			bad("sync.phone_channels: %q is not a phone-number channel (want one of SMS, WHATSAPP, VIBERBM, RCS, MMS)", ch)
		}
	}
	if !slices.Contains(sinch.Languages, o.DefaultLanguage) {
		bad("sync.default_language: %q is not a Sinch language code", o.DefaultLanguage)
	}
	if o.DefaultRegion != "" && !phonenumbers.GetSupportedRegions()[o.DefaultRegion] {
		bad("sync.default_region: %q is not a region code such as SE or US", o.DefaultRegion)
	}
	switch o.DeletePolicy {
	case DeletePolicyDelete, DeletePolicyUnlink, DeletePolicyIgnore:
	default:
		bad("sync.delete_policy: %q is not one of delete, unlink, ignore", o.DeletePolicy)
	}
	if o.MaxDeletes < 0 {
		bad("sync.max_deletes: must not be negative")
	}
	if o.MaxDeleteFraction < 0 || o.MaxDeleteFraction > 1 {
		bad("sync.max_delete_fraction: must be between 0 and 1")
	}
	return errors.Join(errs...)
}

// Owns reports whether syncd may write a contact with this external_id.
func (o Options) Owns(externalID string) bool {
	return externalID != "" && strings.HasPrefix(externalID, o.ExternalIDPrefix)
}
