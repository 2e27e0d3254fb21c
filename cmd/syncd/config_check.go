package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/state"
)

func (e *env) configCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Inspect the configuration",
	}
	var remote bool
	check := &cobra.Command{
		Use:   "check",
		Short: "Validate the configuration, the database connection and the Sinch credentials",
		Long: `Check the configuration file and the environment key by key (every problem at
once, each by its key path), then connect to PostgreSQL (and say whether
migrations are pending), check that crm.source exists and has every column of
the contract with a type syncd can read (and that crm.filter runs over it),
and make one harmless call to Sinch (a list of one contact) to prove the
credentials. With --remote, also check that sinch.app_id's app is in
CONVERSATION processing mode (in DISPATCH mode, the default of apps created
since April 2025, Sinch keeps no contacts for its traffic), and that its
Sinch webhook for webhook.public_url is registered as syncd webhooks
register would leave it. With a projects: list, each project is checked (or only
--project's), its checks named projects[NAME].

Exit status: 0 all checks passed (warnings are printed with !), 1 any problem.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return e.configCheck(cmd.Context(), remote)
		},
	}
	check.Flags().BoolVar(&remote, "remote", false, "also check sinch.app_id's processing mode, and the registered Sinch webhook against webhook.public_url, webhook.secret and sinch.app_id")
	cmd.AddCommand(check)
	return cmd
}

func (e *env) configCheck(ctx context.Context, remote bool) error {
	out := e.stdout
	source := e.configSource()
	cfg, err := readConfig(e.configPath, e.configExplicit, e.getenv)
	var problems []error
	var read configErrors
	switch {
	case errors.As(err, &read):
		// The keys that did read are judged too: every problem at once.
		problems = append(problems, read...)
	case err != nil:
		problems = append(problems, err) // an unreadable file: nothing to judge
	}
	if err == nil || len(read) > 0 {
		problems = append(problems, cfg.problems()...)
	}
	if len(problems) > 0 {
		fmt.Fprintf(out, "✗ configuration from %s:\n", source)
		for _, p := range problems {
			fmt.Fprintf(out, "    %v\n", p)
		}
		return &exitCodeError{code: exitError, err: errors.New(plural(len(problems), "configuration problem"))}
	}
	fmt.Fprintf(out, "✓ configuration from %s\n", source)
	for _, w := range e.envWarnings(cfg) {
		fmt.Fprintf(out, "! %s\n", w)
	}

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
	pending := 0
	check("database.url", func(ctx context.Context) (string, error) {
		store, err := state.Open(ctx, cfg.Database.URL, log)
		if err != nil {
			return "", err
		}
		defer store.Close()
		pending, err = store.PendingMigrations(ctx)
		if err != nil {
			return "", err
		}
		if pending > 0 {
			return fmt.Sprintf("connected; %s pending: run syncd migrate", plural(pending, "migration")), nil
		}
		return "connected; migrations up to date", nil
	})
	projects, err := e.projects(cfg)
	if err != nil {
		failed++
		fmt.Fprintf(out, "✗ %v\n", err)
	}
	listed := len(cfg.projects) > 0
	for _, p := range projects {
		cfg, prefix := p.Config, ""
		if listed {
			prefix = "projects[" + p.Name + "]."
		}
		check(prefix+"crm.source", func(ctx context.Context) (string, error) {
			return checkSource(ctx, out, cfg, prefix, pending, log)
		})
		check(prefix+"sinch", func(ctx context.Context) (string, error) {
			client, err := checkClient(cfg, log)
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
		if remote {
			check(prefix+"sinch.app_id", func(ctx context.Context) (string, error) { return checkApp(ctx, cfg, log) })
			check(prefix+"webhook", func(ctx context.Context) (string, error) { return checkWebhook(ctx, cfg, log) })
		}
	}
	if failed > 0 {
		return &exitCodeError{code: exitError, err: errors.New(plural(failed, "check") + " failed")}
	}
	return nil
}

// checkSource checks that cfg's CRM source has the contract's columns and
// that its filter runs over it; warnings go to out under prefix.
func checkSource(ctx context.Context, out io.Writer, cfg Config, prefix string, pending int, log *zap.Logger) (string, error) {
	store, err := state.Open(ctx, cfg.Database.URL, log)
	if err != nil {
		return "", errors.New("not checked: no database")
	}
	defer store.Close()
	if pending > 0 && cfg.CRM.Filter == "" && (cfg.CRM.Source == "crm_contacts" || cfg.CRM.Source == "public.crm_contacts") {
		return "the reference table; syncd migrate creates it", nil
	}
	sc, err := crm.New(store.SQL()).CheckSource(ctx, cfg.source())
	if err != nil {
		return "", err
	}
	if !sc.OK() {
		var parts []string
		if len(sc.Missing) > 0 {
			parts = append(parts, "missing "+strings.Join(sc.Missing, ", "))
		}
		parts = append(parts, sc.Mistyped...)
		return "", fmt.Errorf("%s does not have the contract's columns: %s", cfg.CRM.Source, strings.Join(parts, "; "))
	}
	for _, w := range sc.Warnings {
		fmt.Fprintf(out, "! %scrm.source: %s\n", prefix, w)
	}
	if cfg.CRM.Filter != "" {
		return fmt.Sprintf("%s has every contract column and crm.filter runs over it", cfg.CRM.Source), nil
	}
	return fmt.Sprintf("%s has every contract column", cfg.CRM.Source), nil
}

// plural counts noun: "1 configuration problem", "2 configuration problems".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// checkClient is the Sinch client of config check: one attempt per call,
// so that a check answers at once rather than after the retries a run
// would make.
func checkClient(cfg Config, log *zap.Logger) (*sinch.Client, error) {
	sc := cfg.sinchConfig()
	sc.Logger = log
	sc.MaxAttempts = 1
	return sinch.NewClient(sc)
}
