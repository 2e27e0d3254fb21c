package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/syncd/syncd/crm"
)

func (e *env) pruneCommand() *cobra.Command {
	var olderThan time.Duration
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Delete journal entries and finished runs older than journal.retention",
		Long: `Delete the project's finished runs that ended more than journal.retention ago
(or --older-than), with their journal entries, in small batches that never
hold up a run: every project's, or --project's. syncd run does the same
every hour; this is for hosts that run only backfills. Runs still marked
running are kept.

Exit status: 0, 1 error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := e.localConfig()
			if err != nil {
				return err
			}
			projects, err := e.projects(cfg)
			if err != nil {
				return err
			}
			retention := cfg.Journal.Retention
			if cmd.Flags().Changed("older-than") {
				retention = olderThan
			}
			if retention <= 0 {
				fmt.Fprintln(e.stdout, "journal.retention is 0: everything is kept.")
				return nil
			}
			d, err := e.openLocal(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer d.Close()
			before := time.Now().Add(-retention)
			for _, p := range projects {
				st, err := d.store.Prune(cmd.Context(), p.Config.Sinch.ProjectID, before, crm.DefaultPruneBatch)
				entries := fmt.Sprintf("%d journal entries", st.JournalEntries)
				if st.JournalEntries == 1 {
					entries = "1 journal entry"
				}
				of := ""
				if len(cfg.projects) > 0 {
					of = " of project " + p.Name
				}
				fmt.Fprintf(e.stdout, "Pruned %s and %s%s that finished before %s.\n",
					entries, plural(int(st.Runs), "run"), of, before.Local().Format(timeLayout))
				if err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&olderThan, "older-than", 0, "prune what finished longer ago than this instead of journal.retention")
	return cmd
}

// pruneEvery is how often the daemon prunes the journal.
const pruneEvery = time.Hour

// pruneLoop prunes the journal at start and then every pruneEvery until
// ctx ends. Each batch is a short statement of its own, so a run going on
// meanwhile never waits on it.
func pruneLoop(ctx context.Context, d *deps) {
	if d.cfg.Journal.Retention <= 0 {
		return
	}
	tick := time.NewTicker(pruneEvery)
	defer tick.Stop()
	for {
		before := time.Now().Add(-d.cfg.Journal.Retention)
		st, err := d.store.Prune(ctx, d.cfg.Sinch.ProjectID, before, crm.DefaultPruneBatch)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			d.log.Warn("prune the journal", zap.Error(err))
		case st.JournalEntries+st.Runs > 0:
			d.log.Info("pruned the journal", zap.Int64("journal_entries", st.JournalEntries), zap.Int64("runs", st.Runs),
				zap.Time("before", before), zap.Int("batches", st.Batches))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
