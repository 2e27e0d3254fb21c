package sinchtest

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/syncd/syncd/sinch"
)

// Apps API operations counted by the emulator.
const (
	OpAppGet    = "app_get"
	OpAppUpdate = "app_update"
)

// The emulator's apps (sinch/README.md, "Apps and processing mode"): an
// app's processing mode decides whether its inbound traffic joins contacts
// at all. An app is known once PutApp made it; Sinch's dashboard, which
// creates apps, has no API counterpart here.

// PutApp creates or replaces an app. An empty processing mode is DISPATCH,
// the default Sinch gives an app created since April 2025.
func (e *Emulator) PutApp(app sinch.App) {
	if app.ProcessingMode == "" {
		app.ProcessingMode = sinch.ProcessingModeDispatch
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.apps == nil {
		e.apps = map[string]sinch.App{}
	}
	e.apps[app.ID] = app
}

// App returns an app PutApp made.
func (e *Emulator) App(id string) (sinch.App, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a, ok := e.apps[id]
	return a, ok
}

// Inbound plays a message that reaches the app from a channel identity, as
// Sinch handles it: in CONVERSATION mode the message joins the contact that
// holds the identity, one being created for a sender no contact holds
// (Sinch's auto-created contact, with its CONTACT_CREATE callback); in
// DISPATCH mode Sinch keeps no contact for it and joins none. It returns
// the contact the message joined, if any.
func (e *Emulator) Inbound(appID string, from sinch.ChannelIdentity) (contactID string, joined bool) {
	e.mu.Lock()
	app, ok := e.apps[appID]
	if !ok || app.ProcessingMode != sinch.ProcessingModeConversation {
		e.mu.Unlock()
		return "", false
	}
	if ids := e.byIdentity[identityIndexKey(from.Channel, from.Identity)]; len(ids) > 0 {
		e.mu.Unlock()
		return ids[0], true
	}
	e.mu.Unlock()
	return e.AutoCreate(from).ID, true
}

// appRoute maps /apps/{app_id} onto the Apps API; /apps/{app_id}/webhooks
// is the Webhooks API's (webhookRoute).
func appRoute(rest string) (byMethod map[string]string, id string, ok bool) {
	id, ok = strings.CutPrefix(rest, "apps/")
	if !ok || id == "" || strings.Contains(id, "/") {
		return nil, "", false
	}
	return map[string]string{http.MethodGet: OpAppGet, http.MethodPatch: OpAppUpdate}, id, true
}

// applyApps runs one Apps API operation: a get, or an update of the
// processing mode (the one field syncd's checks are about).
func (e *Emulator) applyApps(rt route, q url.Values, body []byte) (int, any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	app, ok := e.apps[rt.id]
	if !ok {
		return notFound("app", rt.id)
	}
	if rt.op == OpAppUpdate {
		var in struct {
			ProcessingMode string `json:"processing_mode"`
		}
		if err := decodeStrict(body, &in); err != nil {
			return invalid(err)
		}
		mask := strings.Split(q.Get("update_mask"), ",")
		if !slices.Contains(mask, "processing_mode") {
			return invalid(errors.New("update_mask must name processing_mode, the one field the emulator updates"))
		}
		if in.ProcessingMode != sinch.ProcessingModeConversation && in.ProcessingMode != sinch.ProcessingModeDispatch {
			return invalid(errors.New("processing_mode must be CONVERSATION or DISPATCH"))
		}
		app.ProcessingMode = in.ProcessingMode
		e.apps[rt.id] = app
	}
	return http.StatusOK, app
}
