package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/syncd/syncd/lease"
	"github.com/syncd/syncd/state"
	contactsync "github.com/syncd/syncd/sync"
)

func (e *env) backfillCommand() *cobra.Command {
	var allowMassDelete, strict, wait bool
	cmd := &cobra.Command{
		Use:   "backfill",
		Short: "Run one full reconcile and apply it",
		Long: `Read every Sinch contact and the whole CRM source, diff them and apply the
plan: create, patch, merge and delete so that Sinch mirrors the CRM.

Exit status: 0 success (rejected rows are listed, not fatal unless --strict),
1 error or failed operations (also when the run lost the project lock, which
its PostgreSQL session holds, and stopped), 3 deletes withheld by the mass-delete guard,
75 another syncd holds the project's lock (unless --wait), 130 interrupted
(SIGINT or SIGTERM; operations not sent are left for the next run).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := e.open(cmd.Context())
			if err != nil {
				return err
			}
			defer d.Close()
			rec := d.reconciler(allowMassDelete)
			terminal := isTerminal(e.stderr)
			view := newProgressView(e.stderr, terminal, e.colour(e.stderr), d.log)
			if terminal {
				e.console.draw(view)
			}
			rec.OnProgress = view.update
			rep, err := rec.Backfill(cmd.Context(), wait)
			e.console.draw(nil)
			view.finish()
			if contactsync.IsLocked(err) {
				return &exitCodeError{code: exitTempFail, err: fmt.Errorf("%w; try again later, or pass --wait", err)}
			}
			writeRunSummary(e.stdout, rep)
			if rep.Outcome == state.OutcomeInterrupted {
				return &exitCodeError{code: exitInterrupted, err: fmt.Errorf(
					"interrupted: operations not yet sent were left for later; run syncd backfill again to finish (nothing is sent twice)")}
			}
			if errors.Is(err, lease.ErrLost) {
				return fmt.Errorf("%w; nothing more was sent. Run syncd backfill again once the other runner is done", err)
			}
			if err != nil {
				return err
			}
			return backfillExit(rep, strict)
		},
	}
	cmd.Flags().BoolVar(&allowMassDelete, "allow-mass-delete", false, "apply deletes even when they exceed sync.max_deletes or sync.max_delete_fraction")
	cmd.Flags().BoolVar(&strict, "strict", false, "fail (exit 1) when any CRM row or contact is rejected")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for another syncd to finish instead of exiting 75 while it holds the project lock")
	return cmd
}

func backfillExit(rep contactsync.Report, strict bool) error {
	rejected := len(rep.Plan.Rejected) + len(rep.Rejected)
	switch {
	case rep.Failed > 0:
		return fmt.Errorf("%d operations failed; run again to retry them", rep.Failed)
	case rep.Withheld > 0:
		return deletesWithheld(rep)
	case strict && rejected > 0:
		return fmt.Errorf("%d rows rejected (--strict)", rejected)
	}
	return nil
}

// writeRunSummary prints how a run ended; nothing for one that never
// started (its error says why), which would read "Run 0 in 0s".
func writeRunSummary(w io.Writer, rep contactsync.Report) {
	if rep.RunID == 0 {
		return
	}
	a := rep.Applied
	deleted := fmt.Sprintf("%d deleted", a.Delete)
	if rep.Withheld > 0 {
		deleted += fmt.Sprintf(" (%d withheld by the delete guard: %s)", rep.Withheld, rep.Plan.DeleteGuard)
	}
	fmt.Fprintf(w, "Run %d %s in %s: %d created, %d patched, %d merged, %s, %d unchanged, %d failed, %d skipped.\n",
		rep.RunID, rep.Outcome, rep.Duration.Round(1e6), a.Create, a.Patch, a.Merge, deleted, rep.Plan.Unchanged, rep.Failed, rep.Skipped)
	for _, rej := range rep.Plan.Rejected {
		fmt.Fprintf(w, "rejected  %s  %s\n", rej.ExternalID, rej)
	}
	for _, rej := range rep.Rejected {
		fmt.Fprintf(w, "rejected by Sinch  %s  %s\n", rej.ExternalID, rej.Reason)
	}
	for _, msg := range rep.Errors {
		fmt.Fprintf(w, "failed  %s\n", msg)
	}
}

// deletesWithheld is exit status 3: the run did the rest, the guard kept
// its deletes back.
func deletesWithheld(rep contactsync.Report) error {
	return &exitCodeError{code: exitDeletesWithheld, err: fmt.Errorf("%d deletes withheld: %s", rep.Withheld, rep.Plan.DeleteGuard)}
}
