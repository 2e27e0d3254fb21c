package webhook

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/syncd/syncd/sinch"
)

// The contact triggers a webhook can subscribe to.
const (
	TriggerCreate      = "CONTACT_CREATE"
	TriggerUpdate      = "CONTACT_UPDATE"
	TriggerDelete      = "CONTACT_DELETE"
	TriggerMerge       = "CONTACT_MERGE"
	TriggerDuplication = "CONTACT_IDENTITIES_DUPLICATION"
)

// Triggers are the five contact triggers, as syncd registers them.
func Triggers() []string {
	return []string{TriggerCreate, TriggerDelete, TriggerDuplication, TriggerMerge, TriggerUpdate}
}

// Event is one contact event as Sinch posts it. Events are triggers, not
// truth: they come late, twice and out of order, so a consumer reads the
// contacts an event names afresh rather than trusting the payload.
type Event struct {
	ProjectID    string
	AppID        string
	EventTime    time.Time
	AcceptedTime time.Time
	Trigger      string
	// Contact is the contact of a create, update (after the change) or
	// delete (as it was).
	Contact *sinch.Contact
	// Preserved and Deleted are the two contacts of a merge.
	Preserved, Deleted *sinch.Contact
	// Duplicated are the identities shared by several contacts.
	Duplicated []DuplicatedIdentity
}

// DuplicatedIdentity is one channel on which several contacts share an
// identity.
type DuplicatedIdentity struct {
	Channel    string   `json:"channel"`
	ContactIDs []string `json:"contact_ids"`
}

type contactNotification struct {
	Contact *sinch.Contact `json:"contact"`
}

type envelope struct {
	AppID        string `json:"app_id"`
	ProjectID    string `json:"project_id"`
	AcceptedTime string `json:"accepted_time"`
	EventTime    string `json:"event_time"`

	Create      *contactNotification `json:"contact_create_notification"`
	Update      *contactNotification `json:"contact_update_notification"`
	Delete      *contactNotification `json:"contact_delete_notification"`
	Merge       *mergeNotification   `json:"contact_merge_notification"`
	Duplication *struct {
		Identities []DuplicatedIdentity `json:"duplicated_identities"`
	} `json:"duplicated_contact_identities_notification"`
}

type mergeNotification struct {
	Preserved *sinch.Contact `json:"preserved_contact"`
	Deleted   *sinch.Contact `json:"deleted_contact"`
}

// ErrNotContactEvent is a callback that carries no contact event: the
// webhook may have other triggers too. It is answered 200 and dropped.
var ErrNotContactEvent = errors.New("webhook: not a contact event")

// ParseEvent reads a callback body. A body that is not a Sinch envelope, or
// that carries more than one event, is a Refusal (bad_payload); one that
// carries no contact event is ErrNotContactEvent.
func ParseEvent(body []byte) (Event, error) {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return Event{}, badPayload("not a JSON envelope: %v", err)
	}
	e := Event{ProjectID: env.ProjectID, AppID: env.AppID}
	e.EventTime = parseTime(env.EventTime)
	e.AcceptedTime = parseTime(env.AcceptedTime)
	n := 0
	if env.Create != nil {
		n++
		e.Trigger, e.Contact = TriggerCreate, env.Create.Contact
	}
	if env.Update != nil {
		n++
		e.Trigger, e.Contact = TriggerUpdate, env.Update.Contact
	}
	if env.Delete != nil {
		n++
		e.Trigger, e.Contact = TriggerDelete, env.Delete.Contact
	}
	if env.Merge != nil {
		n++
		e.Trigger, e.Preserved, e.Deleted = TriggerMerge, env.Merge.Preserved, env.Merge.Deleted
	}
	if env.Duplication != nil {
		n++
		e.Trigger, e.Duplicated = TriggerDuplication, env.Duplication.Identities
	}
	switch {
	case n == 0:
		return Event{}, ErrNotContactEvent
	case n > 1:
		return Event{}, badPayload("%d events in one callback", n)
	}
	if len(e.ContactIDs()) == 0 {
		return Event{}, badPayload("%s names no contact", e.Trigger)
	}
	return e, nil
}

func badPayload(format string, args ...any) error {
	return fmt.Errorf("%w: %s", &Refusal{ReasonBadPayload, 400, "the callback's body is not a contact event"}, fmt.Sprintf(format, args...))
}

// parseTime reads Sinch's RFC 3339 times; a missing or unreadable one is
// zero (it only feeds the lag metric).
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// ContactIDs are the ids of the contacts the event names, each once.
func (e Event) ContactIDs() []string {
	var ids []string
	add := func(c *sinch.Contact) {
		if c != nil && c.ID != "" {
			ids = append(ids, c.ID)
		}
	}
	add(e.Contact)
	add(e.Preserved)
	add(e.Deleted)
	for _, d := range e.Duplicated {
		for _, id := range d.ContactIDs {
			if id != "" {
				ids = append(ids, id)
			}
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// ExternalIDs are the external_ids the event's contacts carried, each once:
// hints of the CRM records concerned, which the contacts read afresh may no
// longer carry.
func (e Event) ExternalIDs() []string {
	var ids []string
	for _, c := range []*sinch.Contact{e.Contact, e.Preserved, e.Deleted} {
		if c != nil && c.ExternalID != "" {
			ids = append(ids, c.ExternalID)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// EventKey names a callback's event for deduplication. Sinch gives contact
// events no id of their own (webhooks.md), but a redelivery posts the same
// envelope (accepted_time included), so the digest of the body, with
// insignificant whitespace removed, is the same for every copy of one event
// and differs between two events.
func EventKey(body []byte) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, body); err != nil {
		buf.Reset()
		buf.Write(body)
	}
	sum := sha256.Sum256(buf.Bytes())
	return hex.EncodeToString(sum[:])
}
