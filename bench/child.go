package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/state"
	contactsync "github.com/syncd/syncd/sync"
)

// childArgs is what the driver hands a scenario process, as JSON in
// BENCH_CHILD.
type childArgs struct {
	Scenario    string        `json:"scenario"`
	N           int           `json:"n"`
	DatabaseURL string        `json:"database_url"`
	SinchURL    string        `json:"sinch_url"`
	ProjectID   string        `json:"project_id"`
	KeyID       string        `json:"key_id"`
	KeySecret   string        `json:"key_secret"`
	RPS         float64       `json:"rps"`
	Concurrency int           `json:"concurrency"`
	Profile     string        `json:"profile,omitempty"` // write a CPU profile here
	MemProfile  string        `json:"mem_profile,omitempty"`
	Timeout     time.Duration `json:"timeout"`
	MemLimit    string        `json:"mem_limit,omitempty"`

	// projects: every project's emulator, and the phase to run.
	Projects []benchProject `json:"projects,omitempty"`
	Phase    string         `json:"phase,omitempty"`
}

// childResult is what a scenario process prints on stdout.
type childResult struct {
	Wall       time.Duration `json:"wall"`
	Mallocs    uint64        `json:"mallocs"`
	AllocBytes uint64        `json:"alloc_bytes"`
	HWMKiB     int64         `json:"hwm_kib"` // VmHWM of the child itself

	// Runs.
	Summary  planner.Summary `json:"summary"`
	Applied  planner.Summary `json:"applied"`
	Failed   int             `json:"failed"`
	Lookups  int             `json:"lookups"`
	Outcome  state.Outcome   `json:"outcome"`
	Errors   []string        `json:"errors,omitempty"`
	Withheld int             `json:"withheld"`

	// read: the CRM reader against COPY of the same rows.
	Rows int           `json:"rows"`
	Read time.Duration `json:"read"`
	Copy time.Duration `json:"copy"`

	// purediff.
	Prepare  time.Duration `json:"prepare"`
	Diff     time.Duration `json:"diff"`
	DiffHeap uint64        `json:"diff_heap"`

	// projects: each project's wall, and the process's CPU time.
	Walls []time.Duration `json:"walls,omitempty"`
	CPU   time.Duration   `json:"cpu,omitempty"`

	// freshness: every run the daemon made.
	Runs []freshRun `json:"runs,omitempty"`
}

func runChild(raw string) error {
	var a childArgs
	if err := json.Unmarshal([]byte(raw), &a); err != nil {
		return fmt.Errorf("BENCH_CHILD: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.Timeout)
	defer cancel()
	if a.Profile != "" {
		f, err := os.Create(a.Profile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	if a.MemProfile != "" {
		stop := watchPeakHeap(strings.Replace(a.MemProfile, ".allocs.", ".peakheap.", 1))
		defer stop()
	}
	var res childResult
	var err error
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	switch a.Scenario {
	case "read":
		err = childRead(ctx, a, &res)
	case "purediff":
		err = childPureDiff(a, &res)
	case "diff", "backfill", "noop", "incremental":
		err = childRun(ctx, a, &res)
	case "projects":
		err = childProjects(ctx, a, &res)
	case "freshness":
		err = childFreshness(ctx, a, &res)
	default:
		err = fmt.Errorf("unknown scenario %q", a.Scenario)
	}
	res.Wall = time.Since(start)
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	res.Mallocs = after.Mallocs - before.Mallocs
	res.AllocBytes = after.TotalAlloc - before.TotalAlloc
	res.HWMKiB = vmHWM()
	if a.MemProfile != "" {
		if f, ferr := os.Create(a.MemProfile); ferr == nil {
			_ = pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
	}
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

func (a childArgs) reconciler(store *state.Store) (*contactsync.Reconciler, error) {
	client, err := sinch.NewClient(sinch.Config{
		BaseURL: a.SinchURL, TokenURL: a.SinchURL + "/oauth2/token", // the default auth, oauth2
		ProjectID: a.ProjectID, KeyID: a.KeyID, KeySecret: a.KeySecret,
		RateLimitRPS: a.RPS, MaxConcurrency: a.Concurrency,
	})
	if err != nil {
		return nil, err
	}
	opts := benchOptions()
	opts.AllowMassDelete = true // 2% orphans are over max_deletes: backfill --allow-mass-delete
	return &contactsync.Reconciler{
		CRM: crm.New(store.SQL()), Links: store, Identities: store, Deferrals: store,
		Journal: store, Runs: store, Watermarks: store, Locks: store,
		Sinch: client, Logger: zap.NewNop(),
		ProjectID: a.ProjectID, Source: crm.Source{Relation: "crm_contacts"}, BatchSize: 1000,
		Concurrency: a.Concurrency, Options: opts,
	}, nil
}

func benchOptions() planner.Options { return planner.DefaultOptions() }

func childRun(ctx context.Context, a childArgs, res *childResult) error {
	store, err := state.Open(ctx, a.DatabaseURL, zap.NewNop())
	if err != nil {
		return err
	}
	defer store.Close()
	r, err := a.reconciler(store)
	if err != nil {
		return err
	}
	if a.Scenario == "diff" {
		plan, err := r.Plan(ctx)
		if err != nil {
			return err
		}
		res.Summary = plan.Summary()
		return nil
	}
	kind := state.RunFull
	if a.Scenario == "incremental" {
		kind = state.RunIncremental
	}
	rep, err := r.Run(ctx, kind, false)
	if err != nil {
		return err
	}
	res.Summary = rep.Plan.Summary()
	res.Applied, res.Failed, res.Lookups, res.Outcome = rep.Applied, rep.Failed, rep.Lookups, rep.Outcome
	res.Withheld = rep.Withheld
	res.Errors = rep.Errors
	if len(res.Errors) > 5 {
		res.Errors = res.Errors[:5]
	}
	return nil
}

// copyColumns are the columns crm.Reader.Records selects, cast the same way.
const copyColumns = `external_id::text, display_name::text, email::text, phone::text,
	channel_identities::text, to_jsonb(channel_priority)::text, language::text,
	metadata::text, updated_at::timestamptz, deleted_at::timestamptz`

// childRead streams the whole source through crm.Reader.Records and
// through COPY ... TO STDOUT, alternately, three times each, and keeps the
// fastest of each.
func childRead(ctx context.Context, a childArgs, res *childResult) error {
	store, err := state.Open(ctx, a.DatabaseURL, zap.NewNop())
	if err != nil {
		return err
	}
	defer store.Close()
	conn, err := pgx.Connect(ctx, a.DatabaseURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	copySQL := `COPY (SELECT ` + copyColumns + ` FROM crm_contacts WHERE external_id IS NOT NULL ORDER BY external_id::text) TO STDOUT`
	for range 3 {
		start := time.Now()
		n := 0
		for batch, err := range crm.New(store.SQL()).Records(ctx, crm.Source{Relation: "crm_contacts"}, 1000) {
			if err != nil {
				return err
			}
			n += len(batch)
		}
		if d := time.Since(start); res.Read == 0 || d < res.Read {
			res.Read = d
		}
		res.Rows = n

		start = time.Now()
		lines := &lineCounter{}
		if _, err := conn.PgConn().CopyTo(ctx, lines, copySQL); err != nil {
			return err
		}
		if d := time.Since(start); res.Copy == 0 || d < res.Copy {
			res.Copy = d
		}
		if lines.n != n {
			return fmt.Errorf("COPY gave %d rows, the reader %d", lines.n, n)
		}
	}
	return nil
}

type lineCounter struct{ n int }

func (l *lineCounter) Write(p []byte) (int, error) {
	for _, b := range p {
		if b == '\n' {
			l.n++
		}
	}
	return len(p), nil
}

// childPureDiff builds the snapshot a full run of the world reads, in
// memory, and times the diff alone on one core.
func childPureDiff(a childArgs, res *childResult) error {
	w := world{n: a.N, opts: benchOptions()}
	records := make([]crm.Record, 0, a.N)
	for i := range a.N {
		records = append(records, record(i))
	}
	var contacts []sinch.Contact
	var links []planner.Link
	w.contacts(func(c sinch.Contact, link planner.Link) {
		contacts = append(contacts, c)
		if link.ExternalID != "" {
			links = append(links, link)
		}
	})
	opts := benchOptions()
	opts.AllowMassDelete = true
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	// What a full run does while it reads, overlapped with the list chain:
	// normalise, pack and index the records and links, then pack the
	// contacts (those linked and in sync as a seen bit).
	runtime.GC()
	start := time.Now()
	snap := planner.NewIndex(opts, crm.Source{Relation: "crm_contacts"}, true)
	snap.AddRecords(records)
	snap.AddLinks(links...)
	snap.AddContacts(contacts)
	res.Prepare = time.Since(start)
	byID := make(map[string]sinch.Contact, len(contacts))
	for _, c := range contacts {
		byID[c.ID] = c
	}
	// What it does once the list chain ends: the diff, and again once the
	// contacts it asked for are in (read from memory here, by GET in a run).
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start = time.Now()
	plan := planner.Diff(snap)
	for len(plan.Fetch) > 0 {
		got := make([]sinch.Contact, 0, len(plan.Fetch))
		for _, id := range plan.Fetch {
			got = append(got, byID[id])
		}
		snap.AddContacts(got)
		plan = planner.Diff(snap)
	}
	res.Diff = time.Since(start)
	runtime.ReadMemStats(&after)
	res.DiffHeap = after.TotalAlloc - before.TotalAlloc
	res.Summary = plan.Summary()
	runtime.KeepAlive(snap)
	return nil
}

// vmHWM is the peak resident set of this process, from /proc/self/status.
func vmHWM() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	return parseHWM(f)
}

func parseHWM(r io.Reader) int64 {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kib, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kib
		}
	}
	return 0
}

// watchPeakHeap writes a heap profile whenever the heap in use grows by a
// tenth over the largest seen, so that the last one written shows what was
// live at the peak.
func watchPeakHeap(path string) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		var peak uint64
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak+peak/10 {
				peak = ms.HeapInuse
				if f, err := os.Create(path); err == nil {
					_ = pprof.Lookup("heap").WriteTo(f, 0)
					f.Close()
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}
