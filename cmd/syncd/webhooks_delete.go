package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func (e *env) webhooksDeleteCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "delete [WEBHOOK_ID]",
		Short: "Delete a webhook: the given one, else sinch.app_id's webhook for webhook.public_url",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			need := []string{"sinch.app_id", "webhook.public_url"}
			if len(args) == 1 {
				need = nil
			}
			cfg, client, err := e.webhooksClient(need...)
			if err != nil {
				return err
			}
			defer client.CloseIdleConnections()
			id := ""
			if len(args) == 1 {
				id = args[0]
			} else {
				cur, err := registered(ctx, client, cfg.Sinch.AppID, cfg.Webhook.PublicURL)
				if err != nil {
					return err
				}
				id = cur.ID
			}
			if err := client.DeleteWebhook(ctx, id); err != nil {
				return fmt.Errorf("delete webhook %s: %w", id, err)
			}
			fmt.Fprintf(e.stdout, "deleted webhook %s\n", id)
			return nil
		},
	}
}
