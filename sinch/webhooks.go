package sinch

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// Webhook is a Conversation API webhook: where Sinch posts an app's events.
// Contacts are project-wide, so any one app's webhook receives the contact
// events (sinch/webhooks.md).
type Webhook struct {
	ID         string   `json:"id,omitempty"`
	AppID      string   `json:"app_id,omitempty"`
	Target     string   `json:"target,omitempty"`
	TargetType string   `json:"target_type,omitempty"` // HTTP, or DISMISS (sends nothing)
	Secret     string   `json:"secret,omitempty"`
	Triggers   []string `json:"triggers,omitempty"`
}

// Webhook field paths for an update_mask.
const (
	WebhookFieldAppID      = "app_id"
	WebhookFieldTarget     = "target"
	WebhookFieldTargetType = "target_type"
	WebhookFieldSecret     = "secret"
	WebhookFieldTriggers   = "triggers"
)

// Limits of the Webhooks API.
const (
	MaxWebhooksPerApp   = 5
	MaxWebhookTargetLen = 742
)

// OpWebhooks names the Webhooks API calls in logs and metrics.
const OpWebhooks = "webhooks"

func webhookPath(id string) string { return "/webhooks/" + url.PathEscape(id) }

// CreateWebhook creates a webhook. Like a contact create it is not blindly
// resent: after an attempt whose outcome is open, the app's webhooks are
// listed and one with the same target is taken as the created one.
func (c *Client) CreateWebhook(ctx context.Context, w Webhook) (*Webhook, error) {
	if w.AppID == "" || w.Target == "" {
		return nil, errors.New("sinch: a webhook needs an app_id and a target")
	}
	w.ID = ""
	var out Webhook
	cl := &call{op: OpWebhooks, method: http.MethodPost, path: "/webhooks", body: w, out: &out}
	cl.beforeResend = func(ctx context.Context) (bool, error) {
		hooks, err := c.ListWebhooks(ctx, w.AppID)
		if err != nil {
			return false, err
		}
		for _, h := range hooks {
			if h.Target == w.Target {
				out = h
				return true, nil
			}
		}
		return false, nil
	}
	if err := c.do(ctx, cl); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListWebhooks returns an app's webhooks.
func (c *Client) ListWebhooks(ctx context.Context, appID string) ([]Webhook, error) {
	if appID == "" {
		return nil, errors.New("sinch: app id is required")
	}
	var out struct {
		Webhooks []Webhook `json:"webhooks"`
	}
	if err := c.do(ctx, &call{op: OpWebhooks, method: http.MethodGet, path: "/apps/" + url.PathEscape(appID) + "/webhooks", out: &out, idempotent: true}); err != nil {
		return nil, err
	}
	return out.Webhooks, nil
}

// GetWebhook fetches one webhook; a missing one gives an error for which
// IsNotFound is true.
func (c *Client) GetWebhook(ctx context.Context, id string) (*Webhook, error) {
	if id == "" {
		return nil, errors.New("sinch: webhook id is required")
	}
	var out Webhook
	if err := c.do(ctx, &call{op: OpWebhooks, method: http.MethodGet, path: webhookPath(id), out: &out, idempotent: true}); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateWebhook sets the fields named in mask (WebhookField* constants).
func (c *Client) UpdateWebhook(ctx context.Context, id string, w Webhook, mask []string) (*Webhook, error) {
	if id == "" {
		return nil, errors.New("sinch: webhook id is required")
	}
	q := url.Values{}
	if len(mask) > 0 {
		q.Set("update_mask", strings.Join(mask, ","))
	}
	w.ID = ""
	var out Webhook
	if err := c.do(ctx, &call{op: OpWebhooks, method: http.MethodPatch, path: webhookPath(id), query: q, body: w, out: &out, idempotent: true}); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteWebhook deletes a webhook; a 404 on a resend after a lost answer
// counts as success.
func (c *Client) DeleteWebhook(ctx context.Context, id string) error {
	if id == "" {
		return errors.New("sinch: webhook id is required")
	}
	return c.do(ctx, &call{op: OpWebhooks, method: http.MethodDelete, path: webhookPath(id), idempotent: true,
		settle404: func(context.Context) error { return nil }})
}
