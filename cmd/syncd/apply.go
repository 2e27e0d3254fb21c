package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/syncd/syncd/planner"
	contactsync "github.com/syncd/syncd/sync"
)

func (e *env) applyCommand() *cobra.Command {
	var maxAge time.Duration
	var wait, allowMassDelete bool
	cmd := &cobra.Command{
		Use:   "apply PLAN.json",
		Short: "Apply a plan saved by syncd diff --out, refusing what changed since",
		Long: `Apply exactly the operations of a plan saved by 'syncd diff --out'. Each
operation is checked first: its CRM record must be as the plan saw it, the
contacts it touches must be unchanged in Sinch, and a create must still find
no contact with its external_id. Operations that fail the check are refused
and listed; the rest are applied. A plan older than --max-age is refused whole.

Exit status: 0 applied (refused operations listed), 1 error or failed
operations, 3 deletes withheld by the delete guard (unless
--allow-mass-delete), 4 some operations were refused as stale, 75 another
syncd holds the project's lock (unless --wait).`,
		Args: func(_ *cobra.Command, args []string) error {
			switch {
			case len(args) == 0:
				return errors.New("syncd apply needs the plan file that syncd diff --out saved: syncd apply PLAN.json")
			case len(args) > 1:
				return fmt.Errorf("syncd apply takes one plan file, not %d", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			sp, err := planner.ReadSavedPlan(data)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if age := time.Since(sp.CreatedAt); age > maxAge {
				return fmt.Errorf("the plan was made %s ago, more than --max-age %s: run syncd diff --out again", age.Round(time.Second), maxAge)
			}
			d, err := e.open(cmd.Context())
			if err != nil {
				return err
			}
			defer d.Close()
			rep, stale, err := d.reconciler(allowMassDelete).ApplySaved(cmd.Context(), sp, wait)
			if contactsync.IsLocked(err) {
				return &exitCodeError{code: exitTempFail, err: fmt.Errorf("%w; try again later, or pass --wait", err)}
			}
			for _, s := range stale {
				fmt.Fprintf(e.stdout, "refused  %s %s  %s\n", s.Operation.Kind, s.Operation.ExternalID, s.Reason)
			}
			writeRunSummary(e.stdout, rep)
			if err != nil {
				return err
			}
			if rep.Failed > 0 {
				return fmt.Errorf("%d operations failed; run syncd diff again to plan them anew", rep.Failed)
			}
			if len(stale) > 0 {
				return &exitCodeError{code: exitStalePlan, err: fmt.Errorf("%d operations refused: their preconditions no longer hold; run syncd diff again", len(stale))}
			}
			if rep.Withheld > 0 {
				return deletesWithheld(rep)
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&maxAge, "max-age", time.Hour, "refuse a plan older than this")
	cmd.Flags().BoolVar(&allowMassDelete, "allow-mass-delete", false, "apply the plan's deletes even when the delete guard withheld them (sync.max_deletes, sync.max_delete_fraction)")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for another syncd to finish instead of exiting 75 while it holds the project lock")
	return cmd
}
