package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func (e *env) webhooksListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the webhooks of sinch.app_id",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, client, err := e.webhooksClient("sinch.app_id")
			if err != nil {
				return err
			}
			defer client.CloseIdleConnections()
			hooks, err := client.ListWebhooks(cmd.Context(), cfg.Sinch.AppID)
			if err != nil {
				return fmt.Errorf("list the webhooks of app %s: %w", cfg.Sinch.AppID, err)
			}
			if len(hooks) == 0 {
				fmt.Fprintf(e.stdout, "App %s has no webhooks.\n", cfg.Sinch.AppID)
				return nil
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTARGET\tTYPE\tSECRET\tSYNCD'S\tTRIGGERS")
			for _, h := range hooks {
				secret, ours := "none", ""
				if h.Secret != "" {
					secret = "set" // never shown
				}
				if h.Target == cfg.Webhook.PublicURL {
					ours = "yes"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", h.ID, h.Target, h.TargetType, secret, ours, strings.Join(h.Triggers, ","))
			}
			return tw.Flush()
		},
	}
}
