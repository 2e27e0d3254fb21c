package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.uber.org/zap"

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
