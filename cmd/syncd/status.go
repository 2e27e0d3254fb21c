package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/syncd/syncd/leader"
	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/state"
	contactsync "github.com/syncd/syncd/sync"
)

func (e *env) statusCommand() *cobra.Command {
	var format string
	var limit int
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the last runs and who holds the project lock, for every project",
		Long: `Print the last runs from the journal (kind, start, duration, counts, outcome,
the first rejected rows) and whether a syncd currently holds the project's lock:
for every project of the configuration, one section each, or for --project's.
With --format json, one object of one shape however many projects there are:
{"version": 1, "projects": [...]}, one report per project shown; keys may be
added within a version, never renamed or removed.

Exit status: 0, 1 error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "text" && format != "json" {
				return fmt.Errorf("--format: %q is not one of text, json", format)
			}
			cfg, err := e.localConfig()
			if err != nil {
				return err
			}
			projects, err := e.projects(cfg)
			if err != nil {
				return err
			}
			d, err := e.openLocal(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer d.Close()
			reports := make([]statusReport, 0, len(projects))
			for _, p := range projects {
				st, err := readStatus(cmd.Context(), d.store, p.Config.Sinch.ProjectID, limit)
				if err != nil {
					return fmt.Errorf("project %s: %w", p.Name, err)
				}
				st.Project = p.Name
				reports = append(reports, st)
			}
			list := len(cfg.projects) > 0 && e.project == ""
			if format == "json" {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(statusJSON{Version: statusVersion, Projects: reports})
			}
			for i, st := range reports {
				if i > 0 {
					fmt.Fprintln(e.stdout)
				}
				if list {
					fmt.Fprintf(e.stdout, "== %s ==\n", st.Project)
				}
				if err := writeStatus(e.stdout, st); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "text or json")
	cmd.Flags().IntVar(&limit, "limit", 10, "how many runs to show")
	_ = cmd.RegisterFlagCompletionFunc("format", completeValues([]string{"text", "json"}, false))
	return cmd
}

// statusVersion is the version of status --format json's shape: it
// changes only when a key is renamed or removed, or its meaning changes.
const statusVersion = 1

// statusJSON is what status --format json prints: the same shape for one
// project and for several, so that a consumer does not break when a
// second project is added.
type statusJSON struct {
	Version  int            `json:"version"`
	Projects []statusReport `json:"projects"`
}

type statusReport struct {
	Project   string     `json:"project"` // its name in the configuration
	ProjectID string     `json:"project_id"`
	Lock      lockStatus `json:"lock"`
	// FullRun is the full-run lock, held for as long as a full run goes
	// on (it takes the project lock only while it writes).
	FullRun lockStatus      `json:"full_run"`
	Runs    []runStatusJSON `json:"runs"`
	Events  state.Queue     `json:"events"` // Sinch contact events received and not yet processed, and those parked
	// Deferred is what partial runs left to the next full run.
	Deferred deferredStatus `json:"deferred"`
	// Processes are the `syncd run` processes serving the project: the
	// active one and those standing by.
	Processes []processStatus `json:"processes"`
}

// processStatus is a `syncd run` process as its election session shows it.
type processStatus struct {
	Role            string    `json:"role"` // active or standby
	ApplicationName string    `json:"application_name"`
	BackendPID      int       `json:"backend_pid"`
	Connected       time.Time `json:"connected"`
}

// deferredStatus is the queue of what partial runs could not decide, the
// first few of it shown.
type deferredStatus struct {
	Queued int             `json:"queued"`
	Oldest *time.Time      `json:"oldest,omitempty"`
	First  []deferredEntry `json:"first"`
}

type deferredEntry struct {
	Kind   string    `json:"kind"` // record or contact
	Key    string    `json:"key"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// deferredShown is how many deferred changes status lists.
const deferredShown = 5

type lockStatus struct {
	Held            bool   `json:"held"`
	PID             int    `json:"pid,omitempty"`
	ApplicationName string `json:"application_name,omitempty"`
	ClientAddr      string `json:"client_addr,omitempty"`
}

type runStatusJSON struct {
	ID         int64          `json:"id"`
	Kind       state.RunKind  `json:"kind"`
	Outcome    state.Outcome  `json:"outcome"`
	StartedAt  time.Time      `json:"started_at"`
	FinishedAt *time.Time     `json:"finished_at,omitempty"`
	DurationMS int64          `json:"duration_ms"`
	Host       string         `json:"host"`
	PID        int            `json:"pid"`
	Counts     map[string]int `json:"counts"`
	Error      string         `json:"error,omitempty"`
	// Rejects have the shape of diff's: {external_id, column, reason}.
	Rejects []planner.Rejection `json:"rejects"`
}

func readStatus(ctx context.Context, store *state.Store, projectID string, limit int) (statusReport, error) {
	st := statusReport{ProjectID: projectID, Runs: []runStatusJSON{}}
	// Read, not tried: taking the lock, even for a moment, would make a
	// runner that tries at that moment skip its run as locked.
	holder, held, err := store.LockHolder(ctx, projectID)
	if err != nil {
		return st, err
	}
	if held {
		st.Lock = lockStatus{Held: true, PID: holder.PID, ApplicationName: holder.ApplicationName, ClientAddr: holder.ClientAddr}
	}
	if holder, held, err = store.FullRunHolder(ctx, projectID); err != nil {
		return st, err
	} else if held {
		st.FullRun = lockStatus{Held: true, PID: holder.PID, ApplicationName: holder.ApplicationName, ClientAddr: holder.ClientAddr}
	}
	if st.Events, err = store.Events().Queue(ctx, projectID); err != nil {
		return st, err
	}
	if st.Processes, err = processes(ctx, store, projectID); err != nil {
		return st, err
	}
	deferred, err := store.Deferred(ctx, projectID, "", nil)
	if err != nil {
		return st, err
	}
	st.Deferred = deferredStatus{Queued: len(deferred), First: []deferredEntry{}}
	for i, d := range deferred {
		if i == 0 {
			st.Deferred.Oldest = &d.DeferredAt
		}
		if i < deferredShown {
			st.Deferred.First = append(st.Deferred.First, deferredEntry{Kind: d.Kind, Key: d.Key, Reason: d.Reason, At: d.DeferredAt})
		}
	}
	runs, err := store.LastRuns(ctx, projectID, limit)
	if err != nil {
		return st, err
	}
	// A running run's elapsed time, on the clock that stamped its start.
	now, err := store.Now(ctx)
	if err != nil {
		return st, err
	}
	for _, r := range runs {
		rs := runStatusJSON{ID: r.ID, Kind: r.Kind, Outcome: r.Outcome, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt,
			Host: r.Host, PID: r.PID, Counts: r.Counts, Error: r.Error, Rejects: []planner.Rejection{}}
		if r.FinishedAt != nil {
			rs.DurationMS = r.FinishedAt.Sub(r.StartedAt).Milliseconds()
		} else {
			rs.DurationMS = max(0, now.Sub(r.StartedAt).Milliseconds())
		}
		rejects, err := store.Rejects(ctx, r.ID, 5)
		if err != nil {
			return st, err
		}
		for _, j := range rejects {
			rs.Rejects = append(rs.Rejects, contactsync.RejectionOf(j))
		}
		st.Runs = append(st.Runs, rs)
	}
	return st, nil
}

func writeStatus(w io.Writer, st statusReport) error {
	switch {
	case st.Lock.Held:
		fmt.Fprintf(w, "Project %s: a syncd is running a sync now (backend pid %d, %s).\n", st.ProjectID, st.Lock.PID, st.Lock.ApplicationName)
	case !st.FullRun.Held:
		fmt.Fprintf(w, "Project %s: no sync running now.\n", st.ProjectID)
	}
	if st.FullRun.Held {
		fmt.Fprintf(w, "Project %s: a full run is going on (backend pid %d, %s); partial runs go on beside it.\n",
			st.ProjectID, st.FullRun.PID, st.FullRun.ApplicationName)
	}
	writeProcesses(w, st.Processes)
	writeQueue(w, st.Events)
	writeDeferred(w, st.Deferred)
	if len(st.Runs) == 0 {
		_, err := fmt.Fprintln(w, "No runs yet.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tKIND\tSTARTED\tDURATION\tOUTCOME\tCREATE\tPATCH\tMERGE\tDELETE\tREJECTED\tREFUSED\tDEFERRED\tFAILED")
	for _, r := range st.Runs {
		c := r.Counts
		took := (time.Duration(r.DurationMS) * time.Millisecond).Round(time.Millisecond).String()
		if r.FinishedAt == nil {
			took += " so far"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", r.ID, r.Kind, r.StartedAt.Local().Format(timeLayout),
			took, r.Outcome, c["create"], c["patch"], c["merge"], c["delete"], c["rejected"], c["refused"], c["deferred"], c["failed"])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range st.Runs {
		if r.Error != "" {
			fmt.Fprintf(w, "run %d: %s\n", r.ID, r.Error)
		}
		for _, rej := range r.Rejects {
			fmt.Fprintf(w, "run %d rejected %s: %s\n", r.ID, rej.ExternalID, rej)
		}
	}
	return nil
}

func writeQueue(w io.Writer, q state.Queue) {
	fmt.Fprintf(w, "Sinch events: %d queued", q.Pending)
	if q.OldestPending != nil {
		fmt.Fprintf(w, " (oldest received %s ago)", time.Since(*q.OldestPending).Round(time.Second))
	}
	fmt.Fprintf(w, ", %d processed in the last hour.\n", q.DoneLastHour)
	if q.Retried > 0 {
		fmt.Fprintf(w, "%d queued events failed before and are retried alone", q.Retried)
		if q.NextRetry != nil {
			if d := time.Until(*q.NextRetry); d > 0 {
				fmt.Fprintf(w, ", the next in %s", d.Round(time.Second))
			} else {
				fmt.Fprint(w, ", the next by the next event run")
			}
		}
		fmt.Fprintf(w, "; last error: %s\n", planner.TerminalEscape(q.LastError))
	}
	if q.Parked == 0 {
		return
	}
	fmt.Fprintf(w, "Parked: %s failed alone every time, set aside (syncd events retry ID... or --all puts them back):\n", plural(q.Parked, "event"))
	shown := 0
	for _, r := range q.ParkedReasons {
		ids := make([]string, len(r.IDs))
		for i, id := range r.IDs {
			ids[i] = strconv.FormatInt(id, 10)
		}
		more := ""
		if r.Events > len(r.IDs) {
			more = ", …"
		}
		fmt.Fprintf(w, "  %s (events %s%s): %s\n", plural(r.Events, "event"), strings.Join(ids, ", "), more, planner.TerminalEscape(r.Reason))
		shown += r.Events
	}
	if q.Parked > shown {
		fmt.Fprintf(w, "  and %d more, for other reasons (syncd explain ID shows those of a record)\n", q.Parked-shown)
	}
}

func writeDeferred(w io.Writer, d deferredStatus) {
	if d.Queued == 0 {
		return
	}
	fmt.Fprintf(w, "Left to the next full run: %d", d.Queued)
	if d.Oldest != nil {
		fmt.Fprintf(w, " (oldest queued %s ago)", time.Since(*d.Oldest).Round(time.Second))
	}
	fmt.Fprintln(w, ":")
	for _, e := range d.First {
		fmt.Fprintf(w, "  %s %s: %s\n", e.Kind, planner.TerminalEscape(e.Key), e.Reason)
	}
	if d.Queued > len(d.First) {
		fmt.Fprintf(w, "  and %d more (syncd explain ID shows one)\n", d.Queued-len(d.First))
	}
}

// timeLayout is how times are shown to a person: local, with the offset
// that makes them unambiguous.
const timeLayout = "2006-01-02 15:04:05 -07:00"

// processes lists the `syncd run` processes taking part in the project's
// election, the active one first.
func processes(ctx context.Context, store *state.Store, projectID string) ([]processStatus, error) {
	members, err := leader.Members(ctx, store.SQL(), []string{projectID})
	if err != nil {
		return nil, err
	}
	out := []processStatus{}
	for _, m := range members {
		ps := processStatus{Role: "standby", ApplicationName: m.ApplicationName, BackendPID: m.PID, Connected: m.BackendStart}
		if len(m.Leads) > 0 {
			ps.Role = "active"
			out = append([]processStatus{ps}, out...)
			continue
		}
		out = append(out, ps)
	}
	return out, nil
}

func writeProcesses(w io.Writer, ps []processStatus) {
	if len(ps) == 0 {
		fmt.Fprintln(w, "Processes: no syncd run serves this project.")
		return
	}
	var active, standby []string
	for _, p := range ps {
		name := p.ApplicationName
		if name == "" {
			name = fmt.Sprintf("backend pid %d", p.BackendPID)
		}
		if p.Role == "active" {
			active = append(active, name)
		} else {
			standby = append(standby, name)
		}
	}
	if len(active) == 0 {
		active = []string{"none yet"}
	}
	fmt.Fprintf(w, "Processes: active %s", strings.Join(active, ", "))
	if len(standby) > 0 {
		fmt.Fprintf(w, "; standing by %s", strings.Join(standby, ", "))
	}
	fmt.Fprintln(w, ".")
}
