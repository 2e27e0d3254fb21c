package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/syncd/syncd/state"
)

func (e *env) migrateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply the embedded SQL migrations to the database",
		Long: `Apply the versioned SQL migrations embedded in syncd: the reference CRM table
crm_contacts and syncd's own state in the syncd schema. Safe to run again.
Every other command that needs the schema refuses a database with
migrations pending, in one line that says to run this.

Exit status: 0 applied (or up to date), 1 error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Migrating needs the database only: no Sinch key is required.
			cfg, err := readConfig(e.configPath, e.configExplicit, e.getenv)
			if err != nil {
				return err
			}
			for _, p := range cfg.problems() {
				if strings.HasPrefix(p.Error(), "database.") || strings.HasPrefix(p.Error(), "log.") {
					return p
				}
			}
			log, err := e.logger(cfg.Log)
			if err != nil {
				return err
			}
			defer log.Sync() //nolint:errcheck // stderr sync errors are not actionable
			// The store logs each migration it applies; here the output
			// says it, once: its log keeps warnings and errors only.
			store, err := state.Open(cmd.Context(), cfg.Database.URL, log.WithOptions(zap.IncreaseLevel(zapcore.WarnLevel)))
			if err != nil {
				return fmt.Errorf("database.url: %w", err)
			}
			defer store.Close()
			applied, err := store.Migrate(cmd.Context())
			if err != nil {
				return err
			}
			if len(applied) == 0 {
				fmt.Fprintln(e.stdout, "Database is up to date.")
				return nil
			}
			for _, m := range applied {
				fmt.Fprintf(e.stdout, "applied %s\n", m)
			}
			return nil
		},
	}
}
