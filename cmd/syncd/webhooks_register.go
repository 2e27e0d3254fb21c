package main

import (
	"errors"
	"fmt"
	"slices"

	"github.com/spf13/cobra"

	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/webhook"
)

func (e *env) webhooksRegisterCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "register",
		Short: "Create or update the webhook that posts contact events to webhook.public_url",
		Long: `Make sinch.app_id's webhook with target webhook.public_url send the five
contact triggers (CONTACT_CREATE, CONTACT_DELETE, CONTACT_IDENTITIES_DUPLICATION,
CONTACT_MERGE, CONTACT_UPDATE), signed with webhook.secret. It creates the
webhook when there is none and updates it when it differs; run again, it
changes nothing, so there is never more than one.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg, client, err := e.webhooksClient("sinch.app_id", "webhook.public_url", "webhook.secret")
			if err != nil {
				return err
			}
			defer client.CloseIdleConnections()
			want := sinch.Webhook{AppID: cfg.Sinch.AppID, Target: cfg.Webhook.PublicURL, TargetType: "HTTP",
				Secret: cfg.Webhook.Secret, Triggers: webhook.Triggers()}
			cur, err := registered(ctx, client, want.AppID, want.Target)
			if errors.Is(err, errNoWebhook) {
				created, err := client.CreateWebhook(ctx, want)
				if err != nil {
					return fmt.Errorf("create the webhook: %w", err)
				}
				fmt.Fprintf(e.stdout, "created webhook %s of app %s: %s\n", created.ID, want.AppID, want.Target)
				return nil
			}
			if err != nil {
				return err
			}
			var mask []string
			if cur.TargetType != want.TargetType {
				mask = append(mask, sinch.WebhookFieldTargetType)
			}
			if cur.Secret != want.Secret {
				mask = append(mask, sinch.WebhookFieldSecret)
			}
			if !sameSet(cur.Triggers, want.Triggers) {
				mask = append(mask, sinch.WebhookFieldTriggers)
			}
			if len(mask) == 0 {
				fmt.Fprintf(e.stdout, "webhook %s of app %s is registered: %s\n", cur.ID, want.AppID, want.Target)
				return nil
			}
			if _, err := client.UpdateWebhook(ctx, cur.ID, want, mask); err != nil {
				return fmt.Errorf("update webhook %s: %w", cur.ID, err)
			}
			// The secret itself is never printed.
			fmt.Fprintf(e.stdout, "updated webhook %s of app %s (%v): %s\n", cur.ID, want.AppID, mask, want.Target)
			return nil
		},
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}
