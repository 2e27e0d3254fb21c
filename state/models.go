package state

import (
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"time"

	"github.com/syncd/syncd/planner"
)

// The gorm models of syncd's own tables. They stay unexported: callers see
// planner.Link, Run and JournalEntry, whose empty strings stand for the NULLs here.

type linkRow struct {
	ProjectID   string    `gorm:"column:project_id;primaryKey"`
	ExternalID  string    `gorm:"column:external_id;primaryKey"`
	ContactID   string    `gorm:"column:contact_id"`
	ContentHash string    `gorm:"column:content_hash"`
	SyncedAt    time.Time `gorm:"column:synced_at"`
}

func (linkRow) TableName() string { return "syncd.links" }

type runRow struct {
	ID               int64      `gorm:"column:id;primaryKey"`
	ProjectID        string     `gorm:"column:project_id"`
	Kind             RunKind    `gorm:"column:kind"`
	StartedAt        time.Time  `gorm:"column:started_at;default:now()"`
	FinishedAt       *time.Time `gorm:"column:finished_at"`
	Outcome          Outcome    `gorm:"column:outcome"`
	Counts           runCounts  `gorm:"column:counts"`
	Error            *string    `gorm:"column:error"`
	Host             *string    `gorm:"column:host"`
	PID              *int       `gorm:"column:pid"`
	PIDNamespace     *string    `gorm:"column:pid_namespace"`
	LockPID          *int       `gorm:"column:lock_pid"`
	LockBackendStart *time.Time `gorm:"column:lock_backend_start"`
}

func (runRow) TableName() string { return "syncd.runs" }

func (r runRow) run() Run {
	out := Run{ID: r.ID, ProjectID: r.ProjectID, Kind: r.Kind, Outcome: r.Outcome, Error: deref(r.Error),
		Host: deref(r.Host), PID: deref(r.PID), StartedAt: r.StartedAt, FinishedAt: r.FinishedAt,
		Counts: r.Counts, PIDNamespace: deref(r.PIDNamespace), LockPID: deref(r.LockPID)}
	if out.Counts == nil {
		out.Counts = map[string]int{}
	}
	if r.LockBackendStart != nil {
		out.LockBackendStart = *r.LockBackendStart
	}
	return out
}

// runCounts is the jsonb counts column.
type runCounts map[string]int

func (c runCounts) Value() (driver.Value, error) {
	if c == nil {
		return "{}", nil
	}
	b, err := json.Marshal(map[string]int(c))
	return string(b), err
}

func (c *runCounts) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case []byte:
		b = v
	case string:
		b = []byte(v)
	default:
		return fmt.Errorf("counts: cannot scan %T", src)
	}
	return json.Unmarshal(b, (*map[string]int)(c))
}

type journalRow struct {
	ID              int64          `gorm:"column:id;primaryKey"`
	RunID           int64          `gorm:"column:run_id"`
	Kind            planner.OpKind `gorm:"column:kind"`
	ExternalID      *string        `gorm:"column:external_id"`
	ContactID       *string        `gorm:"column:contact_id"`
	SourceContactID *string        `gorm:"column:source_contact_id"`
	UpdateMask      textArray      `gorm:"column:update_mask;type:text[]"`
	Reason          *string        `gorm:"column:reason"`
	Status          Status         `gorm:"column:status"`
	HTTPStatus      *int           `gorm:"column:http_status"`
	Error           *string        `gorm:"column:error"`
	CreatedAt       time.Time      `gorm:"column:created_at"`
	FinishedAt      *time.Time     `gorm:"column:finished_at"`
	Contacts        *string        `gorm:"column:contacts"`
	Changes         *string        `gorm:"column:changes"`
}

func (journalRow) TableName() string { return "syncd.journal" }

func (j journalRow) entry() JournalEntry {
	return JournalEntry{ID: j.ID, RunID: j.RunID, Kind: j.Kind, ExternalID: deref(j.ExternalID), ContactID: deref(j.ContactID),
		SourceContactID: deref(j.SourceContactID), UpdateMask: j.UpdateMask, Reason: deref(j.Reason), Status: j.Status,
		HTTPStatus: deref(j.HTTPStatus), Error: deref(j.Error), CreatedAt: j.CreatedAt, FinishedAt: j.FinishedAt,
		Contacts: []byte(deref(j.Contacts)), Changes: []byte(deref(j.Changes))}
}

// journalSelect reads update_mask as JSON, which textArray decodes, rather
// than a parser of array literals.
const journalSelect = `id, run_id, kind, external_id, contact_id, source_contact_id,
	to_jsonb(update_mask) AS update_mask, reason, status, http_status, error, created_at, finished_at,
	contacts::text AS contacts, changes::text AS changes`

// textArray is a text[] column read through to_jsonb (see journalSelect).
type textArray []string

func (a *textArray) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case nil:
		*a = nil
		return nil
	case []byte:
		b = v
	case string:
		b = []byte(v)
	default:
		return fmt.Errorf("text array: cannot scan %T", src)
	}
	v, err := decodeTextArray(b)
	*a = v
	return err
}

// decodeTextArray reads to_jsonb(text[]) back into a slice. syncd writes
// the arrays it reads here (update_mask), never with a NULL element.
func decodeTextArray(js []byte) ([]string, error) {
	var out []string
	if err := json.Unmarshal(js, &out); err != nil {
		return nil, fmt.Errorf("want a one-dimensional text array: %w", err)
	}
	return out, nil
}

type watermarkRow struct {
	ProjectID string    `gorm:"column:project_id;primaryKey"`
	UpdatedAt time.Time `gorm:"column:updated_at;autoUpdateTime:false"`
}

func (watermarkRow) TableName() string { return "syncd.watermarks" }

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// nullIfZero is nil for the zero value, which the tables store as NULL.
func nullIfZero[T comparable](v T) *T {
	var zero T
	if v == zero {
		return nil
	}
	return &v
}
