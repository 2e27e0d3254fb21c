package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/syncd/syncd/state"
)

func (e *env) pruneCommand() *cobra.Command {
	var olderThan time.Duration
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Delete journal entries, finished runs and processed Sinch events older than journal.retention",
		Long: `Delete the project's finished runs that ended more than journal.retention ago
(or --older-than), with their journal entries, and the Sinch contact events
processed or parked that long ago (their payloads hold names, phone numbers
and e-mails), in small batches that never hold up a run: every project's, or
--project's. Runs still marked running and events still queued are kept.
The nonces of verified webhook callbacks go once they are older than twice
the accepted clock skew (10 minutes), whatever the retention: past that a
replay is refused by its timestamp. syncd run does the same every hour;
this is for hosts that run only backfills, and --dry-run counts what would
go without deleting anything.

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
			events := d.store.Events()
			verb := "Pruned"
			if dryRun {
				verb = "Would prune"
			}
			for _, p := range projects {
				id := p.Config.Sinch.ProjectID
				var st pruned
				if dryRun {
					st, err = prunable(cmd.Context(), d.store, events, id, before)
				} else {
					st, err = prune(cmd.Context(), d.store, events, id, before)
				}
				of := ""
				if len(cfg.projects) > 0 {
					of = " of project " + p.Name
				}
				fmt.Fprintf(e.stdout, "%s %s, %s and %s%s that finished before %s.\n", verb, entries(st.journal.JournalEntries),
					plural(int(st.journal.Runs), "run"), plural(int(st.events.Events), "processed Sinch event"), of, before.Local().Format(timeLayout))
				if err != nil {
					return err
				}
			}
			if dryRun {
				fmt.Fprintln(e.stdout, "Nothing was deleted (--dry-run).")
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&olderThan, "older-than", 0, "prune what finished longer ago than this instead of journal.retention")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "count what would be pruned, delete nothing")
	return cmd
}

func entries(n int64) string {
	if n == 1 {
		return "1 journal entry"
	}
	return fmt.Sprintf("%d journal entries", n)
}

// pruned is what one project's pruning deleted, or would delete.
type pruned struct {
	journal state.PruneStats
	events  state.EventPruneStats
}

// prune deletes the project's history older than before: its journal and
// runs, its processed events, and the nonces past their use.
func prune(ctx context.Context, store *state.Store, events *state.Events, projectID string, before time.Time) (pruned, error) {
	var st pruned
	var err error
	if st.journal, err = store.Prune(ctx, projectID, before, state.DefaultPruneBatch); err != nil {
		return st, err
	}
	st.events, err = events.PruneEvents(ctx, projectID, before, state.DefaultPruneBatch)
	return st, err
}

// prunable counts what prune would delete.
func prunable(ctx context.Context, store *state.Store, events *state.Events, projectID string, before time.Time) (pruned, error) {
	var st pruned
	var err error
	if st.journal, err = store.Prunable(ctx, projectID, before); err != nil {
		return st, err
	}
	st.events, err = events.Prunable(ctx, projectID, before)
	return st, err
}

// pruneEvery is how often the daemon prunes the journal.
const pruneEvery = time.Hour

// pruneLoop prunes the journal, the runs, the processed events and the
// nonces past their use (see prune) at start and then every pruneEvery until
// ctx ends. Each batch is a short statement of its own, so a run going on
// meanwhile never waits on it. Each round also sets the gauge of parked
// events, which event runs keep up to date otherwise: at the start of the
// lead no event run may come for a while, and a prune may take some.
// retention is journal.retention as it is at each round (a reload may
// change it); 0 prunes nothing.
func pruneLoop(ctx context.Context, d *deps, retention func() time.Duration) {
	tick := time.NewTicker(pruneEvery)
	defer tick.Stop()
	events := d.store.Events()
	for {
		keep := retention()
		before := time.Now().Add(-keep)
		var st pruned
		var err error
		if keep > 0 {
			st, err = prune(ctx, d.store, events, d.cfg.Sinch.ProjectID, before)
		}
		if n, err := events.CountParked(ctx, d.cfg.Sinch.ProjectID); err == nil {
			d.metrics.EventsParked(n)
		}
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			d.log.Warn("prune the journal", zap.Error(err))
		case st.journal.JournalEntries+st.journal.Runs+st.events.Events > 0:
			d.log.Info("pruned the journal", zap.Int64("journal_entries", st.journal.JournalEntries), zap.Int64("runs", st.journal.Runs),
				zap.Int64("events", st.events.Events), zap.Int64("nonces", st.events.Nonces),
				zap.Time("before", before), zap.Int("batches", st.journal.Batches+st.events.Batches))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
