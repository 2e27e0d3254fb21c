package crm

import "time"

// Record is one row of the CRM source relation, as stored. A nil pointer or
// slice is SQL NULL: the CRM has no opinion on that field. Records are not
// validated here; the reconciler normalises and rejects them.
type Record struct {
	ExternalID        string
	DisplayName       *string
	Email             *string
	Phone             *string
	ChannelIdentities []byte   // raw JSON array of {"channel","identity","app_id"}; nil when NULL
	ChannelPriority   []string // nil when NULL; empty (non-nil) for '{}'
	Language          *string
	Metadata          *string // text, or jsonb rendered as text
	UpdatedAt         time.Time
	DeletedAt         *time.Time
}

// Deleted reports whether the record is a tombstone.
func (r Record) Deleted() bool { return r.DeletedAt != nil }
