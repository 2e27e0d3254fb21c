package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	stdsync "sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/syncd/syncd/sinch/sinchtest"
	"github.com/syncd/syncd/state"
)

// The projects scenario: how many projects of -projects-n contacts one
// process keeps in sync. For each count K of -projects, K Sinch projects
// (an emulator each, -latency per request, -rps each as Sinch limits each
// project) mirror the same CRM table, and one process runs, for all K at
// once, as `syncd run` would for K projects: a backfill from empty, a no-op
// full run, and an incremental run after 1% of the rows changed.

// benchProject is one project of the projects scenario.
type benchProject struct {
	SinchURL  string `json:"sinch_url"`
	ProjectID string `json:"project_id"`
}

// projectsRow is one line of the projects table.
type projectsRow struct {
	k                      int
	phase                  string
	slowest, fastest       time.Duration
	bound                  time.Duration
	cpu                    time.Duration
	rssKiB                 int64
	lists, writes, minList int
}

func benchProjects(ctx context.Context, cfg config, counts []int) ([]projectsRow, error) {
	n := cfg.projectsN
	w := world{n: n, opts: benchOptions()}
	logf("projects: preparing the database (%d rows)", n)
	// A database of its own, so that it can run beside the other scenarios.
	dbURL, drop, err := recreateDatabase(ctx, cfg.database+"_projects")
	if err != nil {
		return nil, err
	}
	if !cfg.keep {
		defer drop()
	}
	if err := loadCRM(ctx, dbURL, w); err != nil {
		return nil, fmt.Errorf("load CRM rows: %w", err)
	}
	var out []projectsRow
	for _, k := range counts {
		rows, err := benchProjectCount(ctx, cfg, dbURL, k)
		out = append(out, rows...)
		if err != nil {
			return out, fmt.Errorf("K=%d: %w", k, err)
		}
	}
	return out, nil
}

func benchProjectCount(ctx context.Context, cfg config, dbURL string, k int) ([]projectsRow, error) {
	var emus []*sinchtest.Emulator
	var projects []benchProject
	for i := range k {
		id := fmt.Sprintf("bench-%d-of-%d", i+1, k)
		emu := sinchtest.New(sinchtest.Options{ProjectID: id})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		srv := &http.Server{Handler: emu, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		emu.SetFaults(sinchtest.Faults{Latency: cfg.latency, RateLimitRPS: cfg.rps})
		emus = append(emus, emu)
		projects = append(projects, benchProject{SinchURL: "http://" + ln.Addr().String(), ProjectID: id})
	}
	ccfg := emus[0].ClientConfig(projects[0].SinchURL)
	rtt, err := measureRTT(ctx, ccfg, cfg.rps)
	if err != nil {
		return nil, err
	}
	conc := max(8, int(math.Ceil(cfg.rps*rtt.Seconds()))+1)
	args := childArgs{
		Scenario: "projects", DatabaseURL: dbURL, KeyID: ccfg.KeyID, KeySecret: ccfg.KeySecret,
		RPS: cfg.rps, Concurrency: conc, Timeout: time.Hour, MemLimit: cfg.memLimit, Projects: projects,
	}
	var rows []projectsRow
	for _, phase := range []string{"backfill", "noop", "incremental"} {
		if phase == "incremental" {
			if err := touchRows(ctx, dbURL, cfg.projectsN/100); err != nil {
				return rows, err
			}
		}
		for _, e := range emus {
			e.ResetCalls()
		}
		a := args
		a.Phase = phase
		logf("projects: K=%d %s", k, phase)
		res, rss, err := runChildProcess(a)
		if err != nil {
			return rows, err
		}
		if len(res.Errors) > 0 {
			return rows, fmt.Errorf("%s: %v", phase, res.Errors)
		}
		row := projectsRow{k: k, phase: phase, cpu: res.CPU, rssKiB: rss}
		row.slowest, row.fastest = slices.Max(res.Walls), slices.Min(res.Walls)
		for _, e := range emus {
			c := e.CallCounts()
			row.lists += c[sinchtest.OpList]
			row.writes += c[sinchtest.OpCreate] + c[sinchtest.OpUpdate] + c[sinchtest.OpDelete] + c[sinchtest.OpMerge]
			if phase != "incremental" {
				row.minList = max(row.minList, ceilDiv(len(e.Contacts()), 20))
			}
		}
		if phase == "noop" {
			row.bound = time.Duration(row.minList) * rtt
			if row.writes != 0 {
				return rows, fmt.Errorf("noop: %d writes", row.writes)
			}
		}
		logf("projects: K=%d %s: slowest %s, fastest %s, CPU %s, peak RSS %.0f MiB, %d list calls, %d writes",
			k, phase, row.slowest.Round(time.Millisecond), row.fastest.Round(time.Millisecond), row.cpu.Round(time.Millisecond),
			float64(rss)/1024, row.lists, row.writes)
		rows = append(rows, row)
	}
	return rows, nil
}

// childProjects runs one phase for every project at once, in this one
// process, each with its own client and reconciler over one store.
func childProjects(ctx context.Context, a childArgs, res *childResult) error {
	store, err := state.Open(ctx, a.DatabaseURL, zap.NewNop())
	if err != nil {
		return err
	}
	defer store.Close()
	store.SQL().SetMaxOpenConns(10 * len(a.Projects))
	kind := state.RunFull
	if a.Phase == "incremental" {
		kind = state.RunIncremental
	}
	var before syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	res.Walls = make([]time.Duration, len(a.Projects))
	errs := make([]error, len(a.Projects))
	var wg stdsync.WaitGroup
	for i, p := range a.Projects {
		pa := a
		pa.SinchURL, pa.ProjectID = p.SinchURL, p.ProjectID
		r, err := pa.reconciler(store)
		if err != nil {
			return err
		}
		wg.Go(func() {
			start := time.Now()
			rep, err := r.Run(ctx, kind, false)
			res.Walls[i] = time.Since(start)
			if err == nil && rep.Outcome != state.OutcomeSucceeded {
				err = fmt.Errorf("%s: %s, %d failed", p.ProjectID, rep.Outcome, rep.Failed)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	var after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	res.CPU = time.Duration(after.Utime.Nano()+after.Stime.Nano()-before.Utime.Nano()-before.Stime.Nano()) * time.Nanosecond
	if err := errors.Join(errs...); err != nil {
		res.Errors = append(res.Errors, err.Error())
	}
	return nil
}

func printProjects(w io.Writer, cfg config, rows []projectsRow) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\nProjects of %d CRM rows in one process (%s latency, %.0f req/s per project; CPU is the process's user+system time, of 2 cores × slowest wall):\n\n",
		cfg.projectsN, cfg.latency, cfg.rps)
	fmt.Fprintln(w, "| projects | run | slowest | fastest | list-chain bound | slowest/bound | list calls | writes | CPU | CPU / (2 cores × slowest) | peak RSS |")
	fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		bound, ratio := "—", "—"
		if r.bound > 0 {
			bound = fmtDur(r.bound)
			ratio = fmt.Sprintf("%.2f", r.slowest.Seconds()/r.bound.Seconds())
		}
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %d | %d | %s | %.0f%% | %.0f MiB |\n",
			r.k, r.phase, fmtDur(r.slowest), fmtDur(r.fastest), bound, ratio, r.lists, r.writes, fmtDur(r.cpu),
			100*r.cpu.Seconds()/(2*r.slowest.Seconds()), float64(r.rssKiB)/1024)
	}
}
