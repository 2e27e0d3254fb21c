package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/webhook"
)

// checkWebhook says whether sinch.app_id's webhook for webhook.public_url is
// what `syncd webhooks register` makes: HTTP, the five contact triggers,
// signed with webhook.secret.
func checkWebhook(ctx context.Context, cfg Config, log *zap.Logger) (string, error) {
	var missing []string
	for key, empty := range map[string]bool{"sinch.app_id": cfg.Sinch.AppID == "",
		"webhook.public_url": cfg.Webhook.PublicURL == "", "webhook.secret": cfg.Webhook.Secret == ""} {
		if empty {
			missing = append(missing, key)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return "", fmt.Errorf("%s must be set to check the webhook", strings.Join(missing, ", "))
	}
	client, err := checkClient(cfg, log)
	if err != nil {
		return "", err
	}
	defer client.CloseIdleConnections()
	w, err := registered(ctx, client, cfg.Sinch.AppID, cfg.Webhook.PublicURL)
	if errors.Is(err, errNoWebhook) {
		return "", fmt.Errorf("app %s has no webhook for %s: run syncd webhooks register", cfg.Sinch.AppID, cfg.Webhook.PublicURL)
	}
	if err != nil {
		return "", err
	}
	var wrong []string
	if w.TargetType != "HTTP" {
		wrong = append(wrong, "target_type "+w.TargetType)
	}
	if w.Secret != cfg.Webhook.Secret {
		wrong = append(wrong, "another secret") // never shown
	}
	for _, t := range webhook.Triggers() {
		if !slices.Contains(w.Triggers, t) {
			wrong = append(wrong, "no "+t)
		}
	}
	if len(wrong) > 0 {
		return "", fmt.Errorf("webhook %s differs (%s): run syncd webhooks register", w.ID, strings.Join(wrong, ", "))
	}
	return fmt.Sprintf("webhook %s of app %s posts the contact triggers to %s", w.ID, cfg.Sinch.AppID, w.Target), nil
}

// checkApp says whether sinch.app_id's app keeps contacts for its traffic:
// in DISPATCH processing mode (the default of apps created since April
// 2025) Sinch associates no message with a contact, so the contacts syncd
// keeps are never joined by the app's inbound traffic.
func checkApp(ctx context.Context, cfg Config, log *zap.Logger) (string, error) {
	if cfg.Sinch.AppID == "" {
		return "", errors.New("sinch.app_id must be set to check the processing mode of the app that carries the traffic")
	}
	client, err := checkClient(cfg, log)
	if err != nil {
		return "", err
	}
	defer client.CloseIdleConnections()
	app, err := client.GetApp(ctx, cfg.Sinch.AppID)
	if sinch.IsNotFound(err) {
		return "", fmt.Errorf("project %s has no app %s: check sinch.app_id", cfg.Sinch.ProjectID, cfg.Sinch.AppID)
	}
	if err != nil {
		return "", errors.New(strings.TrimPrefix(err.Error(), "sinch: "))
	}
	if app.ProcessingMode != sinch.ProcessingModeConversation {
		return "", fmt.Errorf("app %s is in %s processing mode, in which Sinch keeps no contacts: its inbound messages never join the contacts syncd keeps. "+
			"Set its processing mode to CONVERSATION (Sinch dashboard: Conversation API, Apps, the app, Processing mode; "+
			"or PATCH /v1/projects/%s/apps/%s?update_mask=processing_mode with {\"processing_mode\": \"CONVERSATION\"})",
			app.ID, cmp.Or(app.ProcessingMode, "an unknown"), cfg.Sinch.ProjectID, app.ID)
	}
	return fmt.Sprintf("app %s is in CONVERSATION processing mode: its traffic joins contacts", app.ID), nil
}
