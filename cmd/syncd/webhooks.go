package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/syncd/syncd/sinch"
)

func (e *env) webhooksCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "webhooks",
		Short: "Set up the Sinch webhook that sends contact events to syncd run",
		Long: `Manage the Conversation API webhook of sinch.app_id through Sinch's Webhooks
API: register points it at webhook.public_url with the five contact triggers
and webhook.secret, list shows the app's webhooks, delete removes one.`,
	}
	cmd.AddCommand(e.webhooksRegisterCommand(), e.webhooksListCommand(), e.webhooksDeleteCommand())
	return cmd
}

// webhooksClient loads the configuration and builds a Sinch client for the
// project the command acts on (oneProject), whose configuration it returns;
// the webhook commands need no database. need names the keys the command
// cannot do without.
func (e *env) webhooksClient(need ...string) (Config, *sinch.Client, error) {
	cfg, err := e.config()
	if err != nil {
		return cfg, nil, err
	}
	p, err := e.oneProject(cfg)
	if err != nil {
		return cfg, nil, err
	}
	where := ""
	if len(cfg.projects) > 0 {
		where = "projects[" + p.Name + "]."
	}
	cfg = p.Config
	for _, key := range need {
		missing := map[string]bool{
			"sinch.app_id":       cfg.Sinch.AppID == "",
			"webhook.public_url": cfg.Webhook.PublicURL == "",
			"webhook.secret":     cfg.Webhook.Secret == "",
		}[key]
		if missing {
			return cfg, nil, fmt.Errorf("%s%s is required for this command", where, key)
		}
	}
	log, err := e.logger(cfg.Log)
	if err != nil {
		return cfg, nil, err
	}
	log = log.With(zap.String("project", p.Name))
	sc := cfg.sinchConfig()
	sc.Logger = log
	client, err := sinch.NewClient(sc)
	if err != nil {
		return cfg, nil, fmt.Errorf("sinch: %w", err)
	}
	return cfg, client, nil
}

// registered finds the app's webhook that targets target.
func registered(ctx context.Context, client *sinch.Client, appID, target string) (*sinch.Webhook, error) {
	hooks, err := client.ListWebhooks(ctx, appID)
	if err != nil {
		return nil, fmt.Errorf("list the webhooks of app %s: %w", appID, err)
	}
	for _, h := range hooks {
		if h.Target == target {
			return &h, nil
		}
	}
	return nil, errNoWebhook
}

var errNoWebhook = errors.New("no webhook of this app targets webhook.public_url")
