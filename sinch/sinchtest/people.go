package sinchtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/webhook"
)

// before is what a contact change needs to announce that its answer does
// not carry: the contact a delete removes, the source a merge removes.
func (e *Emulator) before(rt route, body []byte) *sinch.Contact {
	id := rt.id
	switch rt.op {
	case OpDelete:
	case OpMerge:
		var in mergeBody
		if json.Unmarshal(body, &in) != nil {
			return nil
		}
		id = in.SourceID
	default:
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.contacts[id]
	if !ok {
		return nil
	}
	c = clone(c)
	return &c
}

// announceAPI posts the callbacks of a contact change made through the API:
// Sinch reports a client's own writes too.
func (e *Emulator) announceAPI(rt route, status int, answer any, before *sinch.Contact) {
	if status != http.StatusOK {
		return
	}
	wire, _ := answer.(wireContact)
	var dups []DuplicatedIdentity
	if w, ok := answer.(written); ok {
		wire, dups = w.wireContact, w.dups
	}
	c := fromWire(wire)
	switch rt.op {
	case OpCreate:
		e.announce(webhook.TriggerCreate, c, nil)
		e.announceDuplicated(dups)
	case OpUpdate:
		e.announce(webhook.TriggerUpdate, c, nil)
		e.announceDuplicated(dups)
	case OpDelete:
		if before != nil {
			e.announce(webhook.TriggerDelete, *before, nil)
		}
	case OpMerge:
		if before != nil {
			e.announce(webhook.TriggerMerge, c, before)
		}
	}
}

func fromWire(w wireContact) sinch.Contact {
	b, err := json.Marshal(w)
	if err != nil {
		return sinch.Contact{}
	}
	var c sinch.Contact
	_ = json.Unmarshal(b, &c)
	return c
}

// ErrNoContact is a person's change of a contact the emulator does not
// hold.
var ErrNoContact = errors.New("sinchtest: no such contact")

// EditAsPerson plays a person editing a contact in the Sinch dashboard:
// edit changes it, and a CONTACT_UPDATE callback follows. It returns the
// contact as stored.
func (e *Emulator) EditAsPerson(id string, edit func(*sinch.Contact)) (sinch.Contact, error) {
	e.mu.Lock()
	cur, ok := e.contacts[id]
	if !ok {
		e.mu.Unlock()
		return sinch.Contact{}, fmt.Errorf("%w: %s", ErrNoContact, id)
	}
	next := clone(cur)
	edit(&next)
	next.ID = id
	next = normalize(next)
	e.store(next)
	dups := e.duplicated(cur, next)
	e.mu.Unlock()
	e.announce(webhook.TriggerUpdate, next, nil)
	e.announceDuplicated(dups)
	return clone(next), nil
}

// DeleteAsPerson plays a person deleting a contact in the dashboard; a
// CONTACT_DELETE callback follows.
func (e *Emulator) DeleteAsPerson(id string) error {
	e.mu.Lock()
	cur, ok := e.contacts[id]
	if !ok {
		e.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrNoContact, id)
	}
	cur = clone(cur)
	e.remove(id)
	e.mu.Unlock()
	e.announce(webhook.TriggerDelete, cur, nil)
	return nil
}

// AutoCreate plays Sinch creating a contact for a message from an unknown
// sender: no external_id, language UNSPECIFIED, the sender's identities. A
// CONTACT_CREATE callback follows.
func (e *Emulator) AutoCreate(identities ...sinch.ChannelIdentity) sinch.Contact {
	e.mu.Lock()
	c := normalize(sinch.Contact{ChannelIdentities: identities, Language: sinch.LanguageUnspecified})
	c.ID = e.newID()
	e.store(c)
	dups := e.duplicated(sinch.Contact{}, c)
	e.mu.Unlock()
	e.announce(webhook.TriggerCreate, c, nil)
	e.announceDuplicated(dups)
	return clone(c)
}

// adminPrefix is where the emulator serves its admin endpoints, which play
// what people and Sinch itself do (for `syncd emulator` and `syncd demo`):
//
//	PATCH  /_admin/contacts/{id}     a person's edit: the JSON fields given replace the contact's
//	DELETE /_admin/contacts/{id}     a person's delete
//	POST   /_admin/contacts          Sinch auto-creating a contact: {"channel_identities": [...]}
//
// They need no credentials: the emulator is for loopback only.
const adminPrefix = "/_admin/"

func (e *Emulator) serveAdmin(w http.ResponseWriter, r *http.Request) {
	e.count(OpOther)
	rest := strings.TrimPrefix(r.URL.Path, adminPrefix)
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBytes))
	if err != nil {
		writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "could not read the request body")
		return
	}
	id, hasID := strings.CutPrefix(rest, "contacts/")
	switch {
	case rest == "contacts" && r.Method == http.MethodPost:
		var in sinch.Contact
		if err := json.Unmarshal(body, &in); err != nil || len(in.ChannelIdentities) == 0 {
			writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "channel_identities are required")
			return
		}
		writeJSON(w, r, http.StatusOK, toWire(e.AutoCreate(in.ChannelIdentities...)), 0)
	case hasID && r.Method == http.MethodPatch:
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(body, &fields); err != nil {
			writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", err.Error())
			return
		}
		c, err := e.EditAsPerson(id, func(c *sinch.Contact) {
			cur, _ := json.Marshal(c)
			var merged map[string]json.RawMessage
			_ = json.Unmarshal(cur, &merged)
			for k, v := range fields {
				merged[k] = v
			}
			b, _ := json.Marshal(merged)
			_ = json.Unmarshal(b, c)
		})
		if err != nil {
			writeError(w, http.StatusNotFound, "NOT_FOUND", err.Error())
			return
		}
		writeJSON(w, r, http.StatusOK, toWire(c), 0)
	case hasID && r.Method == http.MethodDelete:
		if err := e.DeleteAsPerson(id); err != nil {
			writeError(w, http.StatusNotFound, "NOT_FOUND", err.Error())
			return
		}
		writeJSON(w, r, http.StatusOK, struct{}{}, 0)
	default:
		writeError(w, http.StatusNotFound, "NOT_FOUND", "no such admin endpoint")
	}
}
