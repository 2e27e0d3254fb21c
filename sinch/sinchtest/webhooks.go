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
	byID   map[string]hook
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
	tokens map[ClientCredentials]callbackToken // bearer tokens of webhooks with client credentials
}

type callback struct {
	target, secret string
	creds          *ClientCredentials
	body           []byte
}

func newHooks() *hooks {
	return &hooks{byID: map[string]hook{}, wake: make(chan struct{}, 1), tokens: map[ClientCredentials]callbackToken{},
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
		w := h.byID[id].Webhook
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

// ClientCredentials are a webhook's OAuth2 client credentials: with them
// Sinch fetches a token from Endpoint (client credentials flow) and sends
// it as a bearer token with each callback, keeping it for the token's
// expires_in, held between 30 s and an hour.
type ClientCredentials struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	Endpoint     string `json:"endpoint"`
	// Scope, when set, is sent with the token request.
	Scope string `json:"scope,omitempty"`
	// ResponseType, when set, is sent with the token request as it is.
	ResponseType string `json:"response_type,omitempty"`
	// TokenRequestType is how the client id and secret are sent: BASIC
	// (HTTP Basic, also for an empty or unknown value) or FORM (in the
	// form).
	TokenRequestType string `json:"token_request_type,omitempty"`
}

// Limits of ClientCredentials (the Webhooks API reference).
const (
	maxCredentialScope        = 1024
	maxCredentialResponseType = 64
)

func (c *ClientCredentials) check() error {
	switch {
	case c.ClientID == "":
		return errors.New("client_credentials.client_id is required")
	case c.ClientSecret == "":
		return errors.New("client_credentials.client_secret is required")
	case c.Endpoint == "":
		return errors.New("client_credentials.endpoint is required")
	case len(c.Scope) > maxCredentialScope:
		return fmt.Errorf("client_credentials.scope: at most %d characters", maxCredentialScope)
	case len(c.ResponseType) > maxCredentialResponseType:
		return fmt.Errorf("client_credentials.response_type: at most %d characters", maxCredentialResponseType)
	}
	if u, err := url.Parse(c.Endpoint); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("client_credentials.endpoint: %q is not a URL", c.Endpoint)
	}
	return nil
}

// hook is a stored webhook.
type hook struct {
	sinch.Webhook
	creds *ClientCredentials
}

// wireWebhook is a webhook as the Webhooks API reads and answers it.
type wireWebhook struct {
	ID                string             `json:"id"`
	AppID             string             `json:"app_id"`
	Target            string             `json:"target"`
	TargetType        string             `json:"target_type"`
	Secret            string             `json:"secret"`
	Triggers          []string           `json:"triggers"`
	ClientCredentials *ClientCredentials `json:"client_credentials"`
}

func webhookWire(w hook) wireWebhook {
	return wireWebhook{ID: w.ID, AppID: w.AppID, Target: w.Target, TargetType: w.TargetType, Secret: w.Secret,
		Triggers: append([]string{}, w.Triggers...), ClientCredentials: cloneCredentials(w.creds)}
}

func (w wireWebhook) hook() hook {
	return hook{Webhook: sinch.Webhook{ID: w.ID, AppID: w.AppID, Target: w.Target, TargetType: w.TargetType, Secret: w.Secret,
		Triggers: slices.Clone(w.Triggers)}, creds: cloneCredentials(w.ClientCredentials)}
}

func cloneCredentials(c *ClientCredentials) *ClientCredentials {
	if c == nil {
		return nil
	}
	cc := *c
	return &cc
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

// webhookFieldClientCredentials is the update_mask path of a webhook's
// client credentials, which sinch.Webhook does not carry.
const webhookFieldClientCredentials = "client_credentials"

// applyWebhooks runs one Webhooks API operation.
func (e *Emulator) applyWebhooks(rt route, q url.Values, body []byte) (int, any) {
	h := e.hooks
	switch rt.op {
	case OpWebhookCreate:
		var in wireWebhook
		if err := decodeStrict(body, &in); err != nil {
			return invalid(err)
		}
		w := in.hook()
		if w.TargetType == "" {
			w.TargetType = "HTTP"
		}
		e.mu.Lock()
		w.ID = e.newID()
		e.mu.Unlock()
		h.mu.Lock()
		defer h.mu.Unlock()
		if err := h.check(w, ""); err != nil {
			return invalid(err)
		}
		h.byID[w.ID] = w
		h.order = append(h.order, w.ID)
		return http.StatusOK, webhookWire(w)
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
		var in wireWebhook
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
				sinch.WebhookFieldSecret: in.Secret != "", sinch.WebhookFieldTriggers: len(in.Triggers) > 0,
				sinch.WebhookFieldAppID: in.AppID != "", webhookFieldClientCredentials: in.ClientCredentials != nil} {
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
		next, set := cur, in.hook()
		next.Triggers = slices.Clone(cur.Triggers)
		for _, p := range mask {
			switch p {
			case sinch.WebhookFieldTarget:
				next.Target = set.Target
			case sinch.WebhookFieldTargetType:
				next.TargetType = set.TargetType
			case sinch.WebhookFieldSecret:
				next.Secret = set.Secret
			case sinch.WebhookFieldTriggers:
				next.Triggers = set.Triggers
			case sinch.WebhookFieldAppID:
				next.AppID = set.AppID
			case webhookFieldClientCredentials:
				next.creds = set.creds
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

// sinchHost reports whether host is one of the Conversation API's own,
// which a webhook may not target: the API reference forbids the
// conversation-api.*.sinch.com subdomains, and the regional endpoints
// ({region}.conversation.api.sinch.com) are the API itself.
func sinchHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	return host == "conversation.api.sinch.com" || strings.HasSuffix(host, ".conversation.api.sinch.com") ||
		strings.HasPrefix(host, "conversation-api.") && strings.HasSuffix(host, ".sinch.com")
}

// check applies the Webhooks API's limits to w (self: its own id when it
// is an update); h.mu must be held.
func (h *hooks) check(w hook, self string) error {
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
	u, err := url.Parse(w.Target)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("target: %q is not a URL", w.Target)
	}
	if sinchHost(u.Hostname()) {
		return fmt.Errorf("target: %s is a Conversation API host; the conversation-api.*.sinch.com subdomains are forbidden", u.Hostname())
	}
	if w.creds != nil {
		if err := w.creds.check(); err != nil {
			return err
		}
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
	// Counted without w itself, so that an update moving a webhook to an
	// app that has its five is refused as a create would be.
	if n >= sinch.MaxWebhooksPerApp {
		return fmt.Errorf("app %s already has %d webhooks, the most allowed", w.AppID, sinch.MaxWebhooksPerApp)
	}
	return nil
}

// DuplicatedIdentity is one entry of a CONTACT_IDENTITIES_DUPLICATION
// callback: the contacts that share an identity on a channel.
type DuplicatedIdentity struct {
	Channel    string   `json:"channel"`
	ContactIDs []string `json:"contact_ids"`
}

// duplicated lists the identities that after gained (held by before on no
// channel) and that other contacts hold too, with every contact holding
// each, in the order of after's identities: what Sinch reports with
// CONTACT_IDENTITIES_DUPLICATION once a write leaves two contacts sharing
// an identity. An identity is shared when the channel, the identity and the
// app_id are the same. Callers hold e.mu, after the write is stored.
func (e *Emulator) duplicated(before, after sinch.Contact) []DuplicatedIdentity {
	var out []DuplicatedIdentity
	for _, ci := range after.ChannelIdentities {
		if slices.Contains(before.ChannelIdentities, ci) {
			continue
		}
		var ids []string
		for _, id := range e.byIdentity[identityIndexKey(ci.Channel, ci.Identity)] {
			if c, ok := e.contacts[id]; ok && slices.Contains(c.ChannelIdentities, ci) {
				ids = append(ids, id)
			}
		}
		if len(ids) > 1 && !slices.ContainsFunc(out, func(d DuplicatedIdentity) bool {
			return d.Channel == ci.Channel && slices.Equal(d.ContactIDs, ids)
		}) {
			out = append(out, DuplicatedIdentity{Channel: ci.Channel, ContactIDs: ids})
		}
	}
	return out
}

// announce posts the callbacks of a contact change: trigger, and for a
// merge the deleted contact. It is called with e.mu released.
func (e *Emulator) announce(trigger string, c sinch.Contact, deleted *sinch.Contact) {
	switch trigger {
	case webhook.TriggerCreate:
		e.post(trigger, "contact_create_notification", map[string]any{"contact": toWire(c)})
	case webhook.TriggerUpdate:
		e.post(trigger, "contact_update_notification", map[string]any{"contact": toWire(c)})
	case webhook.TriggerDelete:
		e.post(trigger, "contact_delete_notification", map[string]any{"contact": toWire(c)})
	case webhook.TriggerMerge:
		e.post(trigger, "contact_merge_notification", map[string]any{"preserved_contact": toWire(c), "deleted_contact": toWire(*deleted)})
	}
}

// announceDuplicated posts a CONTACT_IDENTITIES_DUPLICATION callback for
// dups, if there are any; e.mu is released.
func (e *Emulator) announceDuplicated(dups []DuplicatedIdentity) {
	if len(dups) > 0 {
		e.post(webhook.TriggerDuplication, "duplicated_contact_identities_notification", map[string]any{"duplicated_identities": dups})
	}
}

// post queues the callback of one event, its value under key in the
// envelope, for every webhook subscribed to trigger.
func (e *Emulator) post(trigger, key string, value any) {
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
		body, err := marshal(map[string]any{
			"app_id": w.AppID, "project_id": e.projectID,
			"accepted_time": now.Format(time.RFC3339Nano), "event_time": now.Format(time.RFC3339Nano),
			"message_metadata": "", "correlation_id": "", key: value,
		})
		if err != nil {
			continue
		}
		h.queue = append(h.queue, callback{target: w.Target, secret: w.Secret, creds: cloneCredentials(w.creds), body: body})
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
// retries a callback that was not answered 2xx. A webhook with client
// credentials gets a bearer token fetched with them; a 401 drops it, so the
// next attempt fetches another.
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
		if cb.creds != nil {
			tok, err := h.bearer(*cb.creds, at)
			if err != nil {
				continue
			}
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := h.client.Do(req)
		if err != nil {
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusUnauthorized && cb.creds != nil {
			h.mu.Lock()
			delete(h.tokens, *cb.creds)
			h.mu.Unlock()
		}
		if resp.StatusCode/100 == 2 {
			return true
		}
	}
	return false
}

// How long Sinch keeps a callback token: the expires_in of the token
// endpoint's answer, held within these bounds.
const (
	minCallbackTokenLife = 30 * time.Second
	maxCallbackTokenLife = time.Hour
)

type callbackToken struct {
	value   string
	expires time.Time
}

// bearer returns a token for creds, cached until its expiry, else fetched
// from creds.Endpoint with the client credentials flow.
func (h *hooks) bearer(creds ClientCredentials, now time.Time) (string, error) {
	h.mu.Lock()
	tok, ok := h.tokens[creds]
	h.mu.Unlock()
	if ok && now.Before(tok.expires) {
		return tok.value, nil
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	if creds.Scope != "" {
		form.Set("scope", creds.Scope)
	}
	if creds.ResponseType != "" {
		form.Set("response_type", creds.ResponseType)
	}
	inForm := creds.TokenRequestType == "FORM"
	if inForm {
		form.Set("client_id", creds.ClientID)
		form.Set("client_secret", creds.ClientSecret)
	}
	req, err := http.NewRequest(http.MethodPost, creds.Endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if !inForm {
		req.SetBasicAuth(creds.ClientID, creds.ClientSecret)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var answer struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("callback token endpoint answered %d", resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxRequestBytes)).Decode(&answer); err != nil || answer.AccessToken == "" {
		return "", fmt.Errorf("callback token endpoint: no access_token (%v)", err)
	}
	life := min(max(time.Duration(answer.ExpiresIn)*time.Second, minCallbackTokenLife), maxCallbackTokenLife)
	h.mu.Lock()
	h.tokens[creds] = callbackToken{value: answer.AccessToken, expires: now.Add(life)}
	h.mu.Unlock()
	return answer.AccessToken, nil
}
