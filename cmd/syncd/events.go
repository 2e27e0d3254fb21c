package main

import "github.com/spf13/cobra"

func (e *env) eventsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Look after the queue of Sinch contact events",
		Long: `Look after the queue of Sinch contact events that syncd run receives on
webhook.listen: retry puts back events that failed alone every time and were
parked. syncd status shows the queue, and the parked events with their
reasons; syncd explain ID those about one record.`,
	}
	cmd.AddCommand(e.eventsRetryCommand())
	return cmd
}
