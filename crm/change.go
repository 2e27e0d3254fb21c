package crm

import (
	"encoding/json"
	"strings"
)

// NotifyChannel is the channel the crm_contacts trigger notifies, with the
// change as payload (see ParseChange; "" when it cannot say which).
const NotifyChannel = "syncd_crm_changed"

// Change is one change notification of the CRM source: the operation and
// the external_id before and after (migration 00006). A rename is an UPDATE
// whose OldID and NewID differ.
type Change struct {
	Op    string `json:"op"` // INSERT, UPDATE or DELETE; "" when the payload did not say
	OldID string `json:"old"`
	NewID string `json:"new"`
}

// Change operations.
const (
	OpInsert = "INSERT"
	OpUpdate = "UPDATE"
	OpDelete = "DELETE"
)

// ParseChange reads a NotifyChannel payload: the JSON of the triggers the
// migrations define (crm_contacts' since 00006, syncd.notify_changed()'s
// since 00008), or a bare external_id (what a trigger function of the
// user's own may send, and what those sent before). An empty payload, or one that cannot
// be read, is the zero Change: something changed, it cannot say what.
func ParseChange(payload string) Change {
	if !strings.HasPrefix(payload, "{") {
		return Change{NewID: payload}
	}
	var c Change
	if err := json.Unmarshal([]byte(payload), &c); err != nil {
		return Change{}
	}
	return c
}

// Renamed reports whether the change gave a record a new external_id.
func (c Change) Renamed() bool {
	return c.Op == OpUpdate && c.OldID != "" && c.NewID != "" && c.OldID != c.NewID
}
