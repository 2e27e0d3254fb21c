package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	contactsync "github.com/syncd/syncd/sync"
)

func (e *env) diffCommand() *cobra.Command {
	var format string
	var redact bool
	cmd := &cobra.Command{
		Use:   "diff",
		Short: "Show what a sync would change, changing nothing",
		Long: `Read every Sinch contact and the whole CRM source, and print the creates,
patches, merges and deletes a backfill would make, each with its reason.
Nothing is written to Sinch or to the database.

Exit status: 0 nothing to do, 2 changes pending, 1 error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			render, err := reportWriter(format)
			if err != nil {
				return err
			}
			d, err := e.open(cmd.Context())
			if err != nil {
				return err
			}
			defer d.Close()
			plan, err := d.reconciler(false).Plan(cmd.Context())
			if err != nil {
				return err
			}
			if err := render(e.stdout, plan, contactsync.ReportOptions{Redact: redact}); err != nil {
				return err
			}
			if !plan.Empty() {
				return &exitCodeError{code: exitChangesPending}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "report format: text or json")
	cmd.Flags().BoolVar(&redact, "redact", false, "hide field values (phone numbers, e-mails, names) in the report")
	return cmd
}

func reportWriter(format string) (func(io.Writer, contactsync.Plan, contactsync.ReportOptions) error, error) {
	switch format {
	case "text":
		return contactsync.WriteText, nil
	case "json":
		return contactsync.WriteJSON, nil
	}
	return nil, fmt.Errorf("--format: %q is not one of text, json", format)
}
