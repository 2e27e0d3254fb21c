package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/syncd/syncd/planner"
)

func (e *env) diffCommand() *cobra.Command {
	var format, out, only string
	var redact bool
	var limit int
	cmd := &cobra.Command{
		Use:   "diff",
		Short: "Show what a sync would change, changing nothing",
		Long: `Read every Sinch contact and the whole CRM source, and print the creates,
patches, merges and deletes a backfill would make, each with its reason.
Nothing is written to Sinch or to the database.

With --out, also save the plan with what each operation assumed, for review
and for 'syncd apply'.

Exit status: 0 nothing to do, 2 changes pending, 1 error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			render, err := reportWriter(format)
			if err != nil {
				return err
			}
			opts, err := e.reportOptions(redact, limit, only)
			if err != nil {
				return err
			}
			d, err := e.open(cmd.Context())
			if err != nil {
				return err
			}
			defer d.Close()
			rec := d.reconciler(false)
			var plan planner.Plan
			if out == "" {
				plan, err = rec.Plan(cmd.Context())
			} else {
				// A saved plan records the contacts as the diff saw them.
				var snap *planner.Index
				if plan, snap, err = rec.PlanSnapshot(cmd.Context()); err == nil {
					err = writePlanFile(out, planner.Save(plan, snap, d.cfg.Sinch.ProjectID, time.Now()))
				}
			}
			if err != nil {
				return err
			}
			if err := render(e.stdout, plan, opts); err != nil {
				return err
			}
			if !plan.Empty() {
				return &exitCodeError{code: exitChangesPending}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "text", "report format: text, json or markdown")
	f.BoolVar(&redact, "redact", false, "hide field values (phone numbers, e-mails, names) in the report")
	f.IntVar(&limit, "limit", 0, "show at most N operations of each kind, with a count of the rest (0: all)")
	f.StringVar(&only, "only", "", "show only these kinds, comma-separated: "+strings.Join(planner.ReportKinds, ","))
	f.StringVar(&out, "out", "", "also save the plan to this file, for syncd apply")
	_ = cmd.RegisterFlagCompletionFunc("format", completeValues([]string{"text", "json", "markdown"}, false))
	_ = cmd.RegisterFlagCompletionFunc("only", completeValues(planner.ReportKinds, true))
	return cmd
}

// reportOptions reads the report flags; colour as e.colour says.
func (e *env) reportOptions(redact bool, limit int, only string) (planner.ReportOptions, error) {
	opts := planner.ReportOptions{
		Redact: redact,
		Limit:  limit,
		Color:  e.colour(e.stdout),
	}
	if limit < 0 {
		return opts, fmt.Errorf("--limit must not be negative")
	}
	if only != "" {
		for _, kind := range strings.Split(only, ",") {
			kind = strings.TrimSpace(kind)
			if !slices.Contains(planner.ReportKinds, kind) {
				return opts, fmt.Errorf("--only: %q is not one of %s", kind, strings.Join(planner.ReportKinds, ", "))
			}
			opts.Only = append(opts.Only, kind)
		}
	}
	return opts, nil
}

func reportWriter(format string) (func(io.Writer, planner.Plan, planner.ReportOptions) error, error) {
	switch format {
	case "text":
		return planner.WriteText, nil
	case "json":
		return planner.WriteJSON, nil
	case "markdown":
		return planner.WriteMarkdown, nil
	}
	return nil, fmt.Errorf("--format: %q is not one of text, json, markdown", format)
}

// writePlanFile writes the saved plan readable by its owner only: it holds
// CRM values (names, phone numbers). The plan goes to a new file beside
// path, created 0600, synced, then renamed over path: a file already there
// does not lend its wider mode to the plan, a symlink there is replaced
// rather than followed (its target is left alone), and a crash leaves the
// old file or the new, never half of one.
func writePlanFile(path string, sp planner.SavedPlan) error {
	data, err := json.MarshalIndent(sp, "", "  ")
	if err != nil {
		return err
	}
	if err := writePrivateFile(path, append(data, '\n')); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	return nil
}

func writePrivateFile(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp") // mode 0600
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// CreateTemp makes the file 0600 whatever the umask; say so anyway, as
	// the mode is the point.
	if err = tmp.Chmod(0o600); err != nil {
		return err
	}
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// The rename is durable once the directory is.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
