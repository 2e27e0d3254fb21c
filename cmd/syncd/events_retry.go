package main

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

func (e *env) eventsRetryCommand() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "retry [ID...] [--all]",
		Short: "Put parked Sinch events back in the queue",
		Long: `Put parked Sinch contact events back in the queue: the ones named by ID, or
with --all every parked event of the project (--project's). An event is
parked after failing alone five times (syncd status lists the parked ones
with their ids and reasons, syncd explain ID those about one record). Put
back, it is as if just received: the syncd run that holds the project lock
is told at once and processes it in an event run; if it fails again it is
retried alone and parked again. Needs no Sinch key.

Exit status: 0, 1 error, or an ID that is no parked event of the project
(the others are put back).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case all && len(args) > 0:
				return errors.New("name events or give --all, not both")
			case !all && len(args) == 0:
				return errors.New("name the events to put back (syncd status lists the parked ones), or give --all")
			}
			var ids []int64
			for _, a := range args {
				id, err := strconv.ParseInt(a, 10, 64)
				if err != nil || id <= 0 {
					return fmt.Errorf("%q is not an event id", a)
				}
				ids = append(ids, id)
			}
			cfg, err := e.localConfig()
			if err != nil {
				return err
			}
			p, err := e.oneProject(cfg)
			if err != nil {
				return err
			}
			d, err := e.openLocal(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer d.Close()
			done, err := d.store.Events().Requeue(cmd.Context(), p.Config.Sinch.ProjectID, ids)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Put %s back in the queue", plural(len(done), "parked event"))
			if len(done) > 0 {
				fmt.Fprintf(e.stdout, " (%s); the syncd run that holds the project lock processes them now", joinIDs(done))
			}
			fmt.Fprintln(e.stdout, ".")
			var missing []int64
			for _, id := range ids {
				if !slices.Contains(done, id) {
					missing = append(missing, id)
				}
			}
			if len(missing) > 0 {
				return fmt.Errorf("no parked event of project %s has the id %s (done, still queued, pruned, or never)", p.Name, joinIDs(missing))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "every parked event of the project")
	return cmd
}

func joinIDs(ids []int64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(s, ", ")
}
