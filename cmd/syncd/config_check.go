package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/sinch"
)

func (e *env) configCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Inspect the configuration",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "Validate the configuration, the database connection and the Sinch credentials",
		Long: `Check the configuration file and the environment key by key, then connect to
PostgreSQL (and say whether migrations are pending) and make one harmless call
to Sinch (a list of one contact) to prove the credentials. Exit 1 on any
problem.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return e.configCheck(cmd.Context())
		},
	})
	return cmd
}

func (e *env) configCheck(ctx context.Context) error {
	out := e.stdout
	source := e.configPath
	if !e.configExplicit {
		source += " (if present)"
	}
	cfg, err := readConfig(e.configPath, e.configExplicit, e.getenv)
	problems := cfg.problems()
	if err != nil {
		problems = []error{err} // the rest cannot be judged from a file that does not parse
	}
	if len(problems) > 0 {
		fmt.Fprintf(out, "✗ configuration from %s and the environment:\n", source)
		for _, p := range problems {
			fmt.Fprintf(out, "    %v\n", p)
		}
		return &exitCodeError{code: exitError, err: fmt.Errorf("%d configuration problems", len(problems))}
	}
	fmt.Fprintf(out, "✓ configuration from %s and the environment\n", source)

	log := zap.NewNop()
	failed := 0
	check := func(what string, f func(context.Context) (string, error)) {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		detail, err := f(ctx)
		if err != nil {
			failed++
			fmt.Fprintf(out, "✗ %s: %v\n", what, err)
			return
		}
		fmt.Fprintf(out, "✓ %s: %s\n", what, detail)
	}
	check("database.url", func(ctx context.Context) (string, error) {
		store, err := crm.Open(ctx, cfg.Database.URL, log)
		if err != nil {
			return "", err
		}
		defer store.Close()
		pending, err := store.PendingMigrations(ctx)
		if err != nil {
			return "", err
		}
		if pending > 0 {
			return fmt.Sprintf("connected; %d migrations pending: run syncd migrate", pending), nil
		}
		return "connected; migrations up to date", nil
	})
	check("sinch", func(ctx context.Context) (string, error) {
		sc := cfg.sinchConfig()
		sc.Logger = log
		sc.MaxAttempts = 1
		client, err := sinch.NewClient(sc)
		if err != nil {
			return "", err
		}
		defer client.CloseIdleConnections()
		// A refused key comes back as one line naming the keys to check.
		if _, err := client.ListContacts(ctx, sinch.ListContactsRequest{PageSize: 1}); err != nil {
			return "", errors.New(strings.TrimPrefix(err.Error(), "sinch: ")) // already under "sinch:"
		}
		return fmt.Sprintf("%s auth accepted for project %s", cfg.Sinch.Auth, cfg.Sinch.ProjectID), nil
	})
	if failed > 0 {
		return &exitCodeError{code: exitError, err: fmt.Errorf("%d checks failed", failed)}
	}
	return nil
}
