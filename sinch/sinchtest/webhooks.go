package sinchtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/webhook"
)

// Operations of the Webhooks API, as counted.
const (
	OpWebhookCreate = "webhook_create"
	OpWebhookList   = "webhook_list"
	OpWebhookGet    = "webhook_get"
	OpWebhookUpdate = "webhook_update"
	OpWebhookDelete = "webhook_delete"
)

// webhookTriggers are the triggers a webhook may name (the Conversation
// API's WebhookTrigger values); only the contact ones make callbacks here.
var webhookTriggers = []string{
	"MESSAGE_DELIVERY", "MESSAGE_SUBMIT", "EVENT_DELIVERY", "MESSAGE_INBOUND", "SMART_CONVERSATION",
	"MESSAGE_INBOUND_SMART_CONVERSATION_REDACTION", "EVENT_INBOUND", "CONVERSATION_START", "CONVERSATION_STOP",
	"CONVERSATION_DELETE", "CONTACT_CREATE", "CONTACT_DELETE", "CONTACT_MERGE", "CONTACT_UPDATE",
	"CONTACT_IDENTITIES_DUPLICATION", "CONTACT_CHANNEL_PROFILE_UPDATE", "UNSUPPORTED", "OPT_IN", "OPT_OUT",
	"CAPABILITY", "CHANNEL_EVENT", "RECORD_NOTIFICATION",
}

// CallbackFaults shape how callbacks reach their targets. Rates are
// probabilities in [0, 1], drawn from a generator seeded with Seed.
type CallbackFaults struct {
	Delay         time.Duration // before each callback is posted
	DuplicateRate float64       // posted a second time (a new signature, the same body)
	DropRate      float64       // never posted
	ReorderRate   float64       // the next queued callback goes first
	Seed          int64
}

// CallbackStats count what happened to callbacks.
type CallbackStats struct {
	Queued, Delivered, Failed, Dropped, Duplicated int
}

// hooks is the emulator's Webhooks API state and its callback sender.
type hooks struct {
	mu     sync.Mutex
	byID   map[string]sinch.Webhook
	order  []string // ids in creation order
	faults CallbackFaults
	rng    *mrand.Rand
	queue  []callback
	wake   chan struct{}
	stats  CallbackStats
	closed bool
	done   chan struct{} // closed when the sender has stopped
	client *http.Client
	nonce  int
}

type callback struct {
	target, secret string
	body           []byte
}

func newHooks() *hooks {
	return &hooks{byID: map[string]sinch.Webhook{}, wake: make(chan struct{}, 1),
		rng: mrand.New(mrand.NewPCG(0, 0x5ca1ab1e)), client: &http.Client{Timeout: 5 * time.Second}}
}

// SetCallbackFaults replaces the callback faults and reseeds their
// generator.
func (e *Emulator) SetCallbackFaults(f CallbackFaults) {
	h := e.hooks
	h.mu.Lock()
	defer h.mu.Unlock()
	h.faults = f
	h.rng = mrand.New(mrand.NewPCG(uint64(f.Seed), uint64(f.Seed)^0x5ca1ab1e))
}

// CallbackStats returns the callback counts so far.
func (e *Emulator) CallbackStats() CallbackStats {
	e.hooks.mu.Lock()
	defer e.hooks.mu.Unlock()
	return e.hooks.stats
}

// Webhooks returns every webhook, in creation order.
func (e *Emulator) Webhooks() []sinch.Webhook {
	h := e.hooks
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]sinch.Webhook, 0, len(h.order))
	for _, id := range h.order {
		w := h.byID[id]
		w.Triggers = slices.Clone(w.Triggers)
		out = append(out, w)
	}
	return out
}

// Close stops sending callbacks, waiting for the one under way. Start
// calls it when the test ends.
func (e *Emulator) Close() {
	h := e.hooks
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	done := h.done
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
	if done != nil {
		<-done
	}
	h.client.CloseIdleConnections()
}

// Idle waits until every queued callback has been posted (or dropped), or
// ctx ends.
func (e *Emulator) Idle(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		e.hooks.mu.Lock()
		idle := len(e.hooks.queue) == 0 && e.hooks.stats.Queued == e.hooks.stats.Delivered+e.hooks.stats.Failed+e.hooks.stats.Dropped
		e.hooks.mu.Unlock()
		if idle {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

type wireWebhook struct {
	ID                string   `json:"id"`
	AppID             string   `json:"app_id"`
	Target            string   `json:"target"`
	TargetType        string   `json:"target_type"`
	Secret            string   `json:"secret"`
	Triggers          []string `json:"triggers"`
	ClientCredentials any      `json:"client_credentials"`
}

func webhookWire(w sinch.Webhook) wireWebhook {
	return wireWebhook{ID: w.ID, AppID: w.AppID, Target: w.Target, TargetType: w.TargetType, Secret: w.Secret,
		Triggers: append([]string{}, w.Triggers...)}
}

// webhookRoute matches the Webhooks API paths (after /v1/projects/{id}/).
func webhookRoute(rest string) (byMethod map[string]string, id string, ok bool) {
	switch {
	case rest == "webhooks":
		return map[string]string{http.MethodPost: OpWebhookCreate}, "", true
	case strings.HasPrefix(rest, "webhooks/"):
		id = strings.TrimPrefix(rest, "webhooks/")
		if id == "" || strings.Contains(id, "/") {
			return nil, "", false
		}
		return map[string]string{http.MethodGet: OpWebhookGet, http.MethodPatch: OpWebhookUpdate, http.MethodDelete: OpWebhookDelete}, id, true
	case strings.HasPrefix(rest, "apps/") && strings.HasSuffix(rest, "/webhooks"):
		id = strings.TrimSuffix(strings.TrimPrefix(rest, "apps/"), "/webhooks")
		if id == "" || strings.Contains(id, "/") {
			return nil, "", false
		}
		return map[string]string{http.MethodGet: OpWebhookList}, id, true
	}
	return nil, "", false
}

// applyWebhooks runs one Webhooks API operation.
func (e *Emulator) applyWebhooks(rt route, q url.Values, body []byte) (int, any) {
	h := e.hooks
	switch rt.op {
	case OpWebhookCreate:
		var in sinch.Webhook
		if err := decodeStrict(body, &in); err != nil {
			return invalid(err)
		}
		if in.TargetType == "" {
			in.TargetType = "HTTP"
		}
		e.mu.Lock()
		in.ID = e.newID()
		e.mu.Unlock()
		h.mu.Lock()
		defer h.mu.Unlock()
		if err := h.check(in, ""); err != nil {
			return invalid(err)
		}
		h.byID[in.ID] = in
		h.order = append(h.order, in.ID)
		return http.StatusOK, webhookWire(in)
	case OpWebhookList:
		h.mu.Lock()
		defer h.mu.Unlock()
		out := []wireWebhook{}
		for _, id := range h.order {
			if w := h.byID[id]; w.AppID == rt.id {
				out = append(out, webhookWire(w))
			}
		}
		return http.StatusOK, map[string]any{"webhooks": out}
	case OpWebhookGet:
		h.mu.Lock()
		defer h.mu.Unlock()
		w, ok := h.byID[rt.id]
		if !ok {
			return notFound("webhook", rt.id)
		}
		return http.StatusOK, webhookWire(w)
	case OpWebhookUpdate:
		var in sinch.Webhook
		if err := decodeStrict(body, &in); err != nil {
			return invalid(err)
		}
		var mask []string
		for _, v := range q["update_mask"] {
			for p := range strings.SplitSeq(v, ",") {
				if p = strings.TrimSpace(p); p != "" {
					mask = append(mask, p)
				}
			}
		}
		if _, given := q["update_mask"]; !given {
			for p, set := range map[string]bool{sinch.WebhookFieldTarget: in.Target != "", sinch.WebhookFieldTargetType: in.TargetType != "",
				sinch.WebhookFieldSecret: in.Secret != "", sinch.WebhookFieldTriggers: len(in.Triggers) > 0} {
				if set {
					mask = append(mask, p)
				}
			}
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		cur, ok := h.byID[rt.id]
		if !ok {
			return notFound("webhook", rt.id)
		}
		next := cur
		for _, p := range mask {
			switch p {
			case sinch.WebhookFieldTarget:
				next.Target = in.Target
			case sinch.WebhookFieldTargetType:
				next.TargetType = in.TargetType
			case sinch.WebhookFieldSecret:
				next.Secret = in.Secret
			case sinch.WebhookFieldTriggers:
				next.Triggers = slices.Clone(in.Triggers)
			default:
				return invalid(fmt.Errorf("update_mask: unknown field path %q", p))
			}
		}
		if err := h.check(next, next.ID); err != nil {
			return invalid(err)
		}
		h.byID[next.ID] = next
		return http.StatusOK, webhookWire(next)
	case OpWebhookDelete:
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.byID[rt.id]; !ok {
			return notFound("webhook", rt.id)
		}
		delete(h.byID, rt.id)
		h.order = slices.DeleteFunc(h.order, func(id string) bool { return id == rt.id })
		return http.StatusOK, struct{}{}
	}
	return errorBody(http.StatusNotFound, "NOT_FOUND", "no such endpoint")
}

// check applies the Webhooks API's limits to w (self: its own id when it
// is an update); h.mu must be held.
func (h *hooks) check(w sinch.Webhook, self string) error {
	switch {
	case w.AppID == "":
		return errors.New("app_id is required")
	case w.Target == "":
		return errors.New("target is required")
	case len(w.Target) > sinch.MaxWebhookTargetLen:
		return fmt.Errorf("target: at most %d characters", sinch.MaxWebhookTargetLen)
	case w.TargetType != "HTTP" && w.TargetType != "DISMISS":
		return fmt.Errorf("target_type: invalid value %q", w.TargetType)
	}
	if u, err := url.Parse(w.Target); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("target: %q is not a URL", w.Target)
	}
	for _, t := range w.Triggers {
		if !slices.Contains(webhookTriggers, t) {
			return fmt.Errorf("triggers: invalid value %q", t)
		}
	}
	n := 0
	for _, id := range h.order {
		other := h.byID[id]
		if id == self || other.AppID != w.AppID {
			continue
		}
		n++
		if other.Target == w.Target {
			return fmt.Errorf("a webhook with target %s already exists for app %s", w.Target, w.AppID)
		}
	}
	if self == "" && n >= sinch.MaxWebhooksPerApp {
		return fmt.Errorf("app %s already has %d webhooks, the most allowed", w.AppID, sinch.MaxWebhooksPerApp)
	}
	return nil
}

// announce posts the callbacks of a contact change: trigger, and for a
// merge the deleted contact. It is called with e.mu released.
func (e *Emulator) announce(trigger string, c sinch.Contact, deleted *sinch.Contact) {
	key, value := "", any(nil)
	switch trigger {
	case webhook.TriggerCreate:
		key, value = "contact_create_notification", map[string]any{"contact": toWire(c)}
	case webhook.TriggerUpdate:
		key, value = "contact_update_notification", map[string]any{"contact": toWire(c)}
	case webhook.TriggerDelete:
		key, value = "contact_delete_notification", map[string]any{"contact": toWire(c)}
	case webhook.TriggerMerge:
		key, value = "contact_merge_notification", map[string]any{"preserved_contact": toWire(c), "deleted_contact": toWire(*deleted)}
	default:
		return
	}
	h := e.hooks
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	for _, id := range h.order {
		w := h.byID[id]
		if w.TargetType != "HTTP" || !slices.Contains(w.Triggers, trigger) {
			continue
		}
		now := e.now().UTC()
		body, err := json.Marshal(map[string]any{
			"app_id": w.AppID, "project_id": e.projectID,
			"accepted_time": now.Format(time.RFC3339Nano), "event_time": now.Format(time.RFC3339Nano),
			"message_metadata": "", "correlation_id": "", key: value,
		})
		if err != nil {
			continue
		}
		h.queue = append(h.queue, callback{target: w.Target, secret: w.Secret, body: body})
		h.stats.Queued++
		if h.done == nil {
			h.done = make(chan struct{})
			go h.send(e.now)
		}
	}
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// send posts queued callbacks one at a time, as the faults say, until
// Close.
func (h *hooks) send(now func() time.Time) {
	defer close(h.done)
	for {
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			return
		}
		if len(h.queue) == 0 {
			h.mu.Unlock()
			<-h.wake
			continue
		}
		f := h.faults
		// Every draw is made whatever the queue, so one seed gives one
		// sequence of decisions.
		if reorder := h.rng.Float64() < f.ReorderRate; reorder && len(h.queue) > 1 {
			h.queue[0], h.queue[1] = h.queue[1], h.queue[0]
		}
		cb := h.queue[0]
		h.queue = h.queue[1:]
		drop, dup := h.rng.Float64() < f.DropRate, h.rng.Float64() < f.DuplicateRate
		h.mu.Unlock()
		if drop {
			h.count(func(s *CallbackStats) { s.Dropped++ })
			continue
		}
		if f.Delay > 0 && !h.pause(f.Delay) {
			h.count(func(s *CallbackStats) { s.Dropped++ })
			return
		}
		ok := h.post(cb, now())
		if dup {
			h.count(func(s *CallbackStats) { s.Duplicated++ })
			h.post(cb, now())
		}
		h.count(func(s *CallbackStats) {
			if ok {
				s.Delivered++
			} else {
				s.Failed++
			}
		})
	}
}

// pause waits d unless Close comes first.
func (h *hooks) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return true
		case <-h.wake:
			h.mu.Lock()
			closed := h.closed
			h.mu.Unlock()
			if closed {
				return false
			}
		}
	}
}

func (h *hooks) count(f func(*CallbackStats)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f(&h.stats)
}

// post signs and posts one callback, with up to three attempts, as Sinch
// retries a callback that was not answered 2xx.
func (h *hooks) post(cb callback, at time.Time) bool {
	for attempt := range 3 {
		if attempt > 0 && !h.pause(time.Duration(attempt)*20*time.Millisecond) {
			return false
		}
		h.mu.Lock()
		h.nonce++
		nonce := fmt.Sprintf("emulated-nonce-%d-%d", at.UnixNano(), h.nonce)
		h.mu.Unlock()
		req, err := http.NewRequest(http.MethodPost, cb.target, bytes.NewReader(cb.body))
		if err != nil {
			return false
		}
		req.Header.Set("Content-Type", "application/json")
		if cb.secret != "" {
			webhook.Sign(req.Header, []byte(cb.secret), cb.body, nonce, at)
		}
		resp, err := h.client.Do(req)
		if err != nil {
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			return true
		}
	}
	return false
}
