// Command bench measures syncd against the physical limits of a sync: the
// calls a run must make, the time the sequential list chain and the rate
// limit leave, the speed of COPY for the CRM read, and memory per contact.
//
//	go run ./bench -n 10000,100000,1000000
//
// For each N it recreates the database syncd_bench (-db) on the server of
// SYNCD_TEST_DATABASE_URL (default the test server on 127.0.0.1:5432), loads
// N CRM rows with COPY, seeds an in-process Sinch emulator on loopback with a
// drifted project (see data.go for the mix), and runs each scenario in a
// process of its own, so that its peak RSS is its alone: the CRM read against
// COPY, the pure diff on one core, then diff, backfill, a second (no-op)
// backfill and an incremental run through the real sync.Reconciler,
// sinch.Client, crm.Reader and state.Store; with -only freshness, how soon
// CRM edits reach Sinch while a full run pages (freshness.go). It prints
// markdown tables on stdout; progress goes to stderr. docs/benchmarks.md
// explains the columns.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/sinch/sinchtest"
	"github.com/syncd/syncd/state"
)

func main() {
	if raw := os.Getenv("BENCH_CHILD"); raw != "" {
		if err := runChild(raw); err != nil {
			fmt.Fprintln(os.Stderr, "bench child:", err)
			os.Exit(1)
		}
		return
	}
	var cfg config
	flag.StringVar(&cfg.sizes, "n", "10000,100000,1000000", "comma-separated numbers of CRM rows")
	flag.DurationVar(&cfg.latency, "latency", 20*time.Millisecond, "emulator latency per request, for N up to -large")
	flag.DurationVar(&cfg.largeLatency, "large-latency", 2*time.Millisecond, "emulator latency per request for N above -large")
	flag.IntVar(&cfg.large, "large", 100_000, "N above which -large-latency applies")
	flag.Float64Var(&cfg.rps, "rps", 800, "Sinch rate limit (client and emulator), requests/s")
	flag.IntVar(&cfg.concurrency, "concurrency", 0, "requests in flight; 0: enough to reach -rps at the measured round trip, plus one (at least 8)")
	flag.StringVar(&cfg.only, "only", "", "comma-separated scenarios to run (read,purediff,diff,backfill,noop,incremental,peer,projects,freshness); default all but freshness")
	flag.StringVar(&cfg.projects, "projects", "1,2,4,8,16", "projects: comma-separated numbers of projects served by one process")
	flag.IntVar(&cfg.projectsN, "projects-n", 10_000, "projects: CRM rows (and so contacts) of each project")
	flag.IntVar(&cfg.peerN, "peer-n", 600, "peer: contacts to create")
	flag.DurationVar(&cfg.peerLatency, "peer-latency", 50*time.Millisecond, "peer: emulator latency per request")
	flag.StringVar(&cfg.peerDir, "peer-dir", "", "peer: directory holding (or to receive) the npm install of the Sinch Node SDK; default a temporary one")
	flag.DurationVar(&cfg.freshEvery, "fresh-every", 500*time.Millisecond, "freshness: time between CRM edits")
	flag.StringVar(&cfg.profile, "profile", "", "directory for CPU and allocation profiles of each scenario process")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the bench database after the run")
	flag.StringVar(&cfg.database, "db", "syncd_bench", "the database recreated for each N; give each bench sharing a server its own")
	flag.StringVar(&cfg.memLimit, "gomemlimit", "", "GOMEMLIMIT of the scenario processes (as a service unit would set it), e.g. 500MiB; default none")
	flag.Parse()
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type config struct {
	database     string
	sizes        string
	latency      time.Duration
	largeLatency time.Duration
	large        int
	rps          float64
	concurrency  int
	only         string
	profile      string
	keep         bool
	memLimit     string
	peerN        int
	projects     string
	projectsN    int
	peerLatency  time.Duration
	peerDir      string
	freshEvery   time.Duration
}

// sizeScenarios run once per N; peer runs once.
var sizeScenarios = []string{"read", "purediff", "diff", "backfill", "noop", "incremental", "freshness"}

// namedOnly are the scenarios run only when -only names them: freshness
// adds a full run's list chain per N (about two minutes at 100,000) and
// measures latency rather than a limit.
var namedOnly = []string{"freshness"}

func (c config) wants(scenario string) bool {
	if c.only == "" {
		return !slices.Contains(namedOnly, scenario)
	}
	return slices.Contains(strings.Split(c.only, ","), scenario)
}

// runRow is one line of the runs table.
type runRow struct {
	n                   int
	run                 string
	latency, rtt        time.Duration
	lists, listMin      int
	other, otherMin     int
	otherWhat           string
	wall, bound         time.Duration
	rssKiB              int64
	allocsPer, bytesPer float64
	note                string
}

// readRow is one line of the CRM read and pure diff table.
type readRow struct {
	n             int
	rows          int
	read, copy    time.Duration
	readRSS       int64
	prepare, diff time.Duration
	diffBytesPer  float64
	diffRSS       int64
}

func run(cfg config) error {
	var sizes []int
	for s := range strings.SplitSeq(cfg.sizes, ",") {
		n, err := strconv.Atoi(strings.ReplaceAll(strings.TrimSpace(s), "_", ""))
		if err != nil || n < 100 {
			return fmt.Errorf("-n: %q is not a number of rows (at least 100)", s)
		}
		sizes = append(sizes, n)
	}
	if cfg.profile != "" {
		if err := os.MkdirAll(cfg.profile, 0o755); err != nil {
			return err
		}
	}
	ctx := context.Background()
	var runs []runRow
	var reads []readRow
	var fresh []freshnessRow
	started := time.Now()
	var peers []peerRow
	if cfg.wants("peer") {
		var err error
		if peers, err = runPeer(ctx, cfg); err != nil {
			printPeer(os.Stdout, cfg, peers)
			return fmt.Errorf("peer: %w", err)
		}
	}
	var projects []projectsRow
	if cfg.wants("projects") {
		var counts []int
		for s := range strings.SplitSeq(cfg.projects, ",") {
			k, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || k < 1 {
				return fmt.Errorf("-projects: %q is not a number of projects", s)
			}
			counts = append(counts, k)
		}
		var err error
		if projects, err = benchProjects(ctx, cfg, counts); err != nil {
			printProjects(os.Stdout, cfg, projects)
			return fmt.Errorf("projects: %w", err)
		}
		defer printProjects(os.Stdout, cfg, projects)
	}
	for _, n := range sizes {
		if !slices.ContainsFunc(sizeScenarios, cfg.wants) {
			break
		}
		rr, rd, fr, err := benchSize(ctx, cfg, n)
		runs = append(runs, rr...)
		if rd != nil {
			reads = append(reads, *rd)
		}
		if fr != nil {
			fresh = append(fresh, *fr)
		}
		if err != nil {
			printPeer(os.Stdout, cfg, peers)
			printTables(os.Stdout, cfg, runs, reads)
			printFreshness(os.Stdout, fresh)
			return fmt.Errorf("N=%d: %w", n, err)
		}
	}
	printPeer(os.Stdout, cfg, peers)
	printTables(os.Stdout, cfg, runs, reads)
	printFreshness(os.Stdout, fresh)
	logf("all done in %s", time.Since(started).Round(time.Second))
	return nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05")+" "+format+"\n", args...)
}

func benchSize(ctx context.Context, cfg config, n int) ([]runRow, *readRow, *freshnessRow, error) {
	latency := cfg.latency
	if n > cfg.large {
		latency = cfg.largeLatency
	}
	w := world{n: n, opts: benchOptions()}
	exp := w.expect()

	logf("N=%d: preparing the database", n)
	dbURL, drop, err := recreateDatabase(ctx, cfg.database)
	if err != nil {
		return nil, nil, nil, err
	}
	if !cfg.keep {
		defer drop()
	}
	t := time.Now()
	if err := loadCRM(ctx, dbURL, w); err != nil {
		return nil, nil, nil, fmt.Errorf("load CRM rows: %w", err)
	}
	logf("N=%d: loaded %d CRM rows and their links in %s", n, n, time.Since(t).Round(time.Millisecond))

	emu := sinchtest.New(sinchtest.Options{})
	t = time.Now()
	seedEmulator(emu, w)
	logf("N=%d: seeded the emulator with %d contacts in %s", n, exp.contacts, time.Since(t).Round(time.Millisecond))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, nil, err
	}
	watch := &writeWatch{next: emu}
	srv := &http.Server{Handler: watch, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	emu.SetFaults(sinchtest.Faults{Latency: latency, RateLimitRPS: cfg.rps})
	base := "http://" + ln.Addr().String()
	ccfg := emu.ClientConfig(base)

	rtt, err := measureRTT(ctx, ccfg, cfg.rps)
	if err != nil {
		return nil, nil, nil, err
	}
	logf("N=%d: a list call of 20 contacts takes %s on this machine at %s latency", n, rtt.Round(10*time.Microsecond), latency)

	// Little's law: reaching the rate limit at this round trip takes
	// rps × round trip requests in flight, plus one for the list chain.
	conc := cfg.concurrency
	if conc <= 0 {
		conc = max(8, int(math.Ceil(cfg.rps*rtt.Seconds()))+1)
	}

	args := childArgs{
		N: n, DatabaseURL: dbURL, SinchURL: base, ProjectID: ccfg.ProjectID, KeyID: ccfg.KeyID, KeySecret: ccfg.KeySecret,
		RPS: cfg.rps, Concurrency: conc, Timeout: time.Hour, MemLimit: cfg.memLimit,
	}
	child := func(scenario string) (childResult, int64, error) {
		a := args
		a.Scenario = scenario
		if cfg.profile != "" {
			a.Profile = filepath.Join(cfg.profile, fmt.Sprintf("%s-%d.cpu.pprof", scenario, n))
			a.MemProfile = filepath.Join(cfg.profile, fmt.Sprintf("%s-%d.allocs.pprof", scenario, n))
		}
		logf("N=%d: %s", n, scenario)
		return runChildProcess(a)
	}

	var rows []runRow
	var rd *readRow
	if cfg.wants("read") || cfg.wants("purediff") {
		rd = &readRow{n: n}
	}
	if cfg.wants("read") {
		res, rss, err := child("read")
		if err != nil {
			return rows, rd, nil, err
		}
		rd.rows, rd.read, rd.copy, rd.readRSS = res.Rows, res.Read, res.Copy, rss
	}
	if cfg.wants("purediff") {
		res, rss, err := child("purediff")
		if err != nil {
			return rows, rd, nil, err
		}
		rd.prepare, rd.diff, rd.diffBytesPer, rd.diffRSS = res.Prepare, res.Diff, float64(res.DiffHeap)/float64(n), rss
	}

	measure := func(scenario string, check func(res childResult, counts map[string]int) (runRow, error)) error {
		if !cfg.wants(scenario) {
			return nil
		}
		emu.ResetCalls()
		res, rss, err := child(scenario)
		if err != nil {
			return err
		}
		counts := emu.CallCounts()
		row, cerr := check(res, counts)
		row.n, row.run, row.latency, row.rtt, row.wall, row.rssKiB = n, scenario, latency, rtt, res.Wall, rss
		row.allocsPer = float64(res.Mallocs) / float64(n)
		row.bytesPer = float64(res.AllocBytes) / float64(n)
		if res.Failed > 0 || len(res.Errors) > 0 {
			cerr = errors.Join(cerr, fmt.Errorf("%s: %d operations failed: %v", scenario, res.Failed, res.Errors))
		}
		rows = append(rows, row)
		logf("N=%d: %s took %s (bound %s), %d list calls (min %d), %d %s (min %d), peak RSS %.0f MiB; %+v",
			n, scenario, row.wall.Round(time.Millisecond), row.bound.Round(time.Millisecond), row.lists, row.listMin,
			row.other, row.otherWhat, row.otherMin, float64(rss)/1024, counts)
		return cerr
	}
	listBound := func(lists int) time.Duration { return time.Duration(lists) * rtt }
	writesOf := func(counts map[string]int) int {
		return counts[sinchtest.OpCreate] + counts[sinchtest.OpUpdate] + counts[sinchtest.OpDelete] + counts[sinchtest.OpMerge]
	}
	fullBound := func(lists, writes int) time.Duration {
		return max(listBound(lists), time.Duration(float64(writes)/cfg.rps*float64(time.Second)))
	}

	minLists := ceilDiv(exp.contacts, 20)
	if err := measure("diff", func(res childResult, counts map[string]int) (runRow, error) {
		r := runRow{lists: counts[sinchtest.OpList], listMin: minLists, other: contactCallsBut(counts, sinchtest.OpList), otherWhat: "other"}
		r.bound = listBound(minLists)
		ops := res.Summary.Create + res.Summary.Patch + res.Summary.Merge + res.Summary.Delete
		r.note = fmt.Sprintf("plans %d operations (%d needed)", ops, exp.writes)
		return r, expectEq("diff operations", ops, exp.writes)
	}); err != nil {
		return rows, rd, nil, err
	}
	if err := measure("backfill", func(res childResult, counts map[string]int) (runRow, error) {
		writes := writesOf(counts)
		r := runRow{lists: counts[sinchtest.OpList], listMin: minLists, other: writes, otherMin: exp.writes, otherWhat: "writes"}
		r.bound = fullBound(minLists, exp.writes)
		r.note = fmt.Sprintf("%d created, %d patched, %d merged, %d deleted", res.Applied.Create, res.Applied.Patch, res.Applied.Merge, res.Applied.Delete)
		return r, errors.Join(expectEq("backfill outcome", res.Outcome, state.OutcomeSucceeded), expectEq("backfill writes", writes, exp.writes))
	}); err != nil {
		return rows, rd, nil, err
	}
	after := len(emu.Contacts())
	if err := measure("noop", func(res childResult, counts map[string]int) (runRow, error) {
		r := runRow{lists: counts[sinchtest.OpList], listMin: ceilDiv(after, 20), other: contactCallsBut(counts, sinchtest.OpList), otherWhat: "other"}
		r.bound = listBound(r.listMin)
		r.note = fmt.Sprintf("%d unchanged", res.Summary.Unchanged)
		return r, errors.Join(expectEq("no-op list calls", r.lists, r.listMin), expectEq("no-op other calls", r.other, 0))
	}); err != nil {
		return rows, rd, nil, err
	}
	if cfg.wants("incremental") {
		k := max(10, n/1000)
		if err := touchRows(ctx, dbURL, k); err != nil {
			return rows, rd, nil, err
		}
		if err := measure("incremental", func(res childResult, counts map[string]int) (runRow, error) {
			writes := writesOf(counts)
			r := runRow{lists: counts[sinchtest.OpList], listMin: k, other: writes, otherMin: k, otherWhat: "writes"}
			r.note = fmt.Sprintf("%d rows changed, %d touched without change: %d look-ups, %d patched", k, k, res.Lookups, res.Applied.Patch)
			return r, errors.Join(expectEq("incremental look-ups", r.lists, k), expectEq("incremental writes", writes, k))
		}); err != nil {
			return rows, rd, nil, err
		}
	}
	if cfg.wants("freshness") {
		if !cfg.wants("backfill") {
			// The project in sync first, as the noop scenario finds it.
			res, _, err := child("backfill")
			if err == nil && res.Outcome != state.OutcomeSucceeded {
				err = fmt.Errorf("the backfill before freshness: %s, %v", res.Outcome, res.Errors)
			}
			if err != nil {
				return rows, rd, nil, err
			}
		}
		a := args
		if cfg.profile != "" {
			a.Profile = filepath.Join(cfg.profile, fmt.Sprintf("freshness-%d.cpu.pprof", n))
			a.MemProfile = filepath.Join(cfg.profile, fmt.Sprintf("freshness-%d.allocs.pprof", n))
		}
		fr, err := benchFreshness(ctx, cfg, dbURL, emu, watch, a)
		fr.latency, fr.rtt = latency, rtt
		return rows, rd, &fr, err
	}
	return rows, rd, nil, nil
}

func expectEq[T comparable](what string, got, want T) error {
	if got != want {
		return fmt.Errorf("%s: got %v, want %v", what, got, want)
	}
	return nil
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// contactCallsBut counts the contact calls other than op: every call but
// op and the OAuth2 token requests, which are the client's authentication,
// not work on contacts.
func contactCallsBut(counts map[string]int, op string) int {
	n := 0
	for k, v := range counts {
		if k != op && k != sinchtest.OpToken {
			n += v
		}
	}
	return n
}

// runChildProcess re-executes this binary for one scenario and returns its
// result and its peak RSS in KiB.
func runChildProcess(a childArgs) (childResult, int64, error) {
	cmd, out, err := childCommand(a)
	if err != nil {
		return childResult{}, 0, err
	}
	if err := cmd.Run(); err != nil {
		return childResult{}, 0, fmt.Errorf("scenario %s: %w", a.Scenario, err)
	}
	return readChildResult(a, out)
}

// childCommand is the process of one scenario, not yet started; its result
// is written to out.
func childCommand(a childArgs) (*exec.Cmd, *bytes.Buffer, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	raw, _ := json.Marshal(a)
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "BENCH_CHILD="+string(raw))
	if a.MemLimit != "" && a.Scenario != "purediff" {
		cmd.Env = append(cmd.Env, "GOMEMLIMIT="+a.MemLimit)
	}
	out := &bytes.Buffer{}
	cmd.Stdout = out
	cmd.Stderr = os.Stderr
	return cmd, out, nil
}

// readChildResult reads the result a scenario process wrote, and its peak
// RSS in KiB.
func readChildResult(a childArgs, out *bytes.Buffer) (childResult, int64, error) {
	var res childResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return childResult{}, 0, fmt.Errorf("scenario %s: reading its result: %w", a.Scenario, err)
	}
	// VmHWM of the child's own address space. Not the kernel's ru_maxrss
	// of the child: exec records the high-water mark of the address space
	// it replaces, which for a child forked with CLONE_VM (as Go does) is
	// this driver's, emulator and all.
	return res, res.HWMKiB, nil
}

func printTables(w io.Writer, cfg config, runs []runRow, reads []readRow) {
	if len(runs) > 0 {
		fmt.Fprintf(w, "\nRuns (rate limit %.0f req/s; bound = max(minimum list calls × round trip, minimum writes ÷ rate limit)):\n\n", cfg.rps)
		fmt.Fprintln(w, "| N | run | latency (round trip) | list calls (min) | other calls (min) | wall | bound | wall/bound | peak RSS | allocs/row | bytes/row |")
		fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
		for _, r := range runs {
			other := fmt.Sprintf("%d %s", r.other, r.otherWhat)
			if r.otherWhat == "writes" {
				other = fmt.Sprintf("%d writes (%d)", r.other, r.otherMin)
			}
			bound, ratio := "—", "—"
			if r.bound > 0 {
				bound = fmtDur(r.bound)
				ratio = fmt.Sprintf("%.2f", r.wall.Seconds()/r.bound.Seconds())
			}
			lists := fmt.Sprintf("%d (%d)", r.lists, r.listMin)
			if r.run == "incremental" {
				lists = fmt.Sprintf("%d (≤ %d)", r.lists, r.listMin)
				other = fmt.Sprintf("%d writes (≤ %d)", r.other, r.otherMin)
			}
			fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %s | %s | %.0f MiB | %.0f | %.0f |\n",
				r.n, r.run, fmt.Sprintf("%s (%.1f ms)", r.latency, float64(r.rtt)/float64(time.Millisecond)), lists, other, fmtDur(r.wall), bound, ratio,
				float64(r.rssKiB)/1024, r.allocsPer, r.bytesPer)
		}
		fmt.Fprintln(w)
		for _, r := range runs {
			if r.note != "" {
				fmt.Fprintf(w, "- N=%d %s: %s\n", r.n, r.run, r.note)
			}
		}
	}
	if len(reads) > 0 {
		fmt.Fprintln(w, "\nCRM read (crm.Reader.Records against COPY of the same query) and the pure diff (one core):")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| N | reader rows/s | COPY rows/s | reader/COPY time | reader peak RSS | normalise+index 1 core | diff 1 core | diff bytes/row |")
		fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|")
		for _, r := range reads {
			rate := func(d time.Duration) string {
				if d == 0 {
					return "—"
				}
				return fmt.Sprintf("%.0f", float64(r.rows)/d.Seconds())
			}
			ratio := "—"
			if r.copy > 0 {
				ratio = fmt.Sprintf("%.2f", r.read.Seconds()/r.copy.Seconds())
			}
			fmt.Fprintf(w, "| %d | %s | %s | %s | %.0f MiB | %s | %s | %.0f |\n", r.n, rate(r.read), rate(r.copy), ratio,
				float64(r.readRSS)/1024, fmtDur(r.prepare), fmtDur(r.diff), r.diffBytesPer)
		}
	}
}

func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "—"
	case d < time.Second:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
}

// measureRTT is the round trip of one list call of a full page through the
// client, the floor of each link of the list chain: the emulator's latency
// plus what the machine adds (timer slack, loopback, encoding, decoding).
func measureRTT(ctx context.Context, cfg sinch.Config, rps float64) (time.Duration, error) {
	cfg.RateLimitRPS = rps
	c, err := sinch.NewClient(cfg)
	if err != nil {
		return 0, err
	}
	defer c.CloseIdleConnections()
	const probes = 51
	var took []time.Duration
	for i := range probes + 1 {
		start := time.Now()
		if _, err := c.ListContacts(ctx, sinch.ListContactsRequest{PageSize: sinch.MaxPageSize}); err != nil {
			return 0, err
		}
		if i > 0 { // the first pays for the connection
			took = append(took, time.Since(start))
		}
	}
	slices.Sort(took)
	return took[len(took)/2], nil // the median: a stray pause elsewhere on the machine does not move it
}
