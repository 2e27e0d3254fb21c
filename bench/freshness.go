package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	stdsync "sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/sinch/sinchtest"
	"github.com/syncd/syncd/state"
	contactsync "github.com/syncd/syncd/sync"
)

// The freshness scenario: how long a CRM edit made while a full run pages
// takes to reach Sinch. A full run holds the project lock only while it
// writes a batch, so the incremental run a CRM change wakes goes on beside
// it. From a project in sync (after the backfill), a process runs what
// `syncd run` runs for a project with crm.notify: a LISTEN on the CRM's
// change channel feeding a sync.Daemon, whose full schedule fires once at
// the start. While that no-op full run pages, the driver, which hosts the
// emulator, commits a new display name for one random in-sync row every
// -fresh-every, and times each from its commit to the emulator's answer to
// the write that carried it. Editing stops once the full run has ended.

// freshnessRow is one line of the freshness table.
type freshnessRow struct {
	n                  int
	latency, rtt       time.Duration
	every              time.Duration
	full               freshRun // the full run
	fullLists, minList int
	lags               []time.Duration // sorted
	incrementals       int             // incremental runs the edits woke
	lookups, maxLookup int             // their look-ups, in all and in the largest
	writes, takenBack  int
	kept               bool // every edited contact holds its last edit after the run
}

// freshRun is one run the freshness process's daemon made.
type freshRun struct {
	Kind     state.RunKind   `json:"kind"`
	Outcome  state.Outcome   `json:"outcome"`
	Duration time.Duration   `json:"duration"`
	Applied  planner.Summary `json:"applied"`
	Skipped  int             `json:"skipped"`
	Lookups  int             `json:"lookups"`
	Errors   []string        `json:"errors,omitempty"`
}

// writeWatch serves the emulator and, while on is set, tells it of every
// contact a write answered, as the emulator answers: it applies a write
// just before it answers, so that is when it holds the new contact, seen
// without copying the whole project to look.
type writeWatch struct {
	next http.Handler
	on   atomic.Pointer[func(at time.Time, c sinch.Contact)]
}

func (w *writeWatch) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	on := w.on.Load()
	if on == nil || (r.Method != http.MethodPatch && r.Method != http.MethodPost) {
		w.next.ServeHTTP(rw, r)
		return
	}
	ans := &answer{ResponseWriter: rw}
	w.next.ServeHTTP(ans, r)
	if ans.status != http.StatusOK {
		return
	}
	var c sinch.Contact
	if json.Unmarshal(ans.body.Bytes(), &c) == nil && c.ExternalID != "" {
		(*on)(ans.at, c)
	}
}

// answer keeps the status, body and time of an answer it passes on.
type answer struct {
	http.ResponseWriter
	status int
	at     time.Time
	body   bytes.Buffer
}

func (a *answer) WriteHeader(code int) {
	if a.status == 0 {
		a.status, a.at = code, time.Now()
	}
	a.ResponseWriter.WriteHeader(code)
}

func (a *answer) Write(b []byte) (int, error) {
	if a.status == 0 {
		a.WriteHeader(http.StatusOK)
	}
	a.body.Write(b)
	return a.ResponseWriter.Write(b)
}

// freshEdit is one CRM edit of the freshness scenario.
type freshEdit struct {
	name              string
	committed, landed time.Time
}

// benchFreshness runs the freshness scenario on a project in sync, served
// by emu behind watch.
func benchFreshness(ctx context.Context, cfg config, dbURL string, emu *sinchtest.Emulator, watch *writeWatch, args childArgs) (freshnessRow, error) {
	row := freshnessRow{n: args.N, every: cfg.freshEvery}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return row, err
	}
	defer conn.Close(ctx)
	var before int64
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM syncd.runs`).Scan(&before); err != nil {
		return row, err
	}

	var mu stdsync.Mutex
	edits := map[string]*freshEdit{}
	landed := make(chan struct{}, 1)
	watch.on.Store(new(func(at time.Time, c sinch.Contact) {
		mu.Lock()
		defer mu.Unlock()
		e := edits[c.ExternalID]
		switch {
		case e == nil:
		case c.DisplayName != e.name:
			row.takenBack++ // a write of an edited contact without its edit
		case e.landed.IsZero():
			e.landed = at
			select {
			case landed <- struct{}{}:
			default:
			}
		}
	}))
	defer watch.on.Store(nil)

	emu.ResetCalls()
	args.Scenario = "freshness"
	cmd, out, err := childCommand(args)
	if err != nil {
		return row, err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return row, err
	}
	if err := cmd.Start(); err != nil {
		return row, fmt.Errorf("scenario freshness: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	stop := func() error { // closing its stdin tells the process to stop
		if !stopped {
			stopped = true
			stdin.Close()
			return <-exited
		}
		return nil
	}
	defer stop()

	// The full run, as the runs table tells of it: its id, and whether it
	// has ended.
	var fullID int64
	fullRunning := func() (bool, error) {
		var id int64
		var outcome string
		err := conn.QueryRow(ctx, `SELECT id, outcome FROM syncd.runs WHERE project_id = $1 AND kind = $2 AND id > $3 ORDER BY id LIMIT 1`,
			projectID, state.RunFull, before).Scan(&id, &outcome)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		}
		fullID = id
		return err == nil && outcome == string(state.OutcomeRunning), err
	}
	logf("N=%d: freshness: waiting for the full run", row.n)
	for deadline := time.Now().Add(time.Minute); ; {
		running, err := fullRunning()
		if err != nil {
			return row, err
		}
		if running {
			break
		}
		if fullID != 0 {
			return row, errors.New("the full run ended before the first edit")
		}
		if time.Now().After(deadline) {
			return row, errors.New("no full run started within a minute")
		}
		select {
		case err := <-exited:
			stopped = true
			return row, fmt.Errorf("scenario freshness ended before its full run started: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}

	// One new display name every -fresh-every, each on a row of its own, in
	// sync before the scenario and with a valid phone.
	rng := rand.New(rand.NewPCG(uint64(row.n), 0xf5e5))
	used := map[int]bool{}
	pick := func() int {
		for {
			i := rng.IntN(row.n)
			if kindOf(i) == kindInSync && i%1000 != 950 && !used[i] {
				used[i] = true
				return i
			}
		}
	}
	logf("N=%d: freshness: the full run %d pages; editing one row every %s", row.n, fullID, cfg.freshEvery)
	tick := time.NewTicker(cfg.freshEvery)
	defer tick.Stop()
	for k := 1; ; k++ {
		running, err := fullRunning()
		if err != nil {
			return row, err
		}
		if !running {
			break
		}
		ext := externalID(pick())
		e := &freshEdit{name: "Edited " + strconv.Itoa(k) + " during the full run"}
		mu.Lock()
		edits[ext] = e
		mu.Unlock()
		if _, err := conn.Exec(ctx, `UPDATE crm_contacts SET display_name = $1, updated_at = now() WHERE external_id = $2`, e.name, ext); err != nil {
			return row, err
		}
		committed := time.Now()
		mu.Lock()
		e.committed = committed
		mu.Unlock()
		select {
		case err := <-exited:
			stopped = true
			return row, fmt.Errorf("scenario freshness ended during the full run: %v", err)
		case <-tick.C:
		}
	}

	// The last edits' runs may still be going.
	waiting := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, e := range edits {
			if e.landed.IsZero() {
				n++
			}
		}
		return n
	}
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
wait:
	for waiting() > 0 {
		select {
		case <-landed:
		case <-deadline.C:
			break wait
		}
	}
	if err := stop(); err != nil {
		return row, fmt.Errorf("scenario freshness: %w", err)
	}
	res, _, err := readChildResult(args, out)
	if err != nil {
		return row, err
	}
	watch.on.Store(nil)

	counts := emu.CallCounts()
	var errs []error
	mu.Lock()
	for ext, e := range edits {
		if e.landed.IsZero() {
			errs = append(errs, fmt.Errorf("%s's edit never reached Sinch", ext))
			continue
		}
		row.lags = append(row.lags, e.landed.Sub(e.committed))
	}
	mu.Unlock()
	slices.Sort(row.lags)
	for _, r := range res.Runs {
		switch r.Kind {
		case state.RunFull:
			row.full = r
		case state.RunIncremental:
			row.incrementals++
			row.lookups += r.Lookups
			row.maxLookup = max(row.maxLookup, r.Lookups)
		}
		if r.Outcome != state.OutcomeSucceeded {
			errs = append(errs, fmt.Errorf("a %s run %s: %v", r.Kind, r.Outcome, r.Errors))
		}
	}
	row.fullLists = counts[sinchtest.OpList] - row.lookups
	row.minList = ceilDiv(len(emu.Contacts()), 20)
	row.writes = counts[sinchtest.OpCreate] + counts[sinchtest.OpUpdate] + counts[sinchtest.OpDelete] + counts[sinchtest.OpMerge]

	// Every edited contact holds its last edit: the full run, which read
	// the CRM before them, took none back.
	row.kept = true
	byExt := map[string][]sinch.Contact{}
	for _, c := range emu.Contacts() {
		if edits[c.ExternalID] != nil {
			byExt[c.ExternalID] = append(byExt[c.ExternalID], c)
		}
	}
	for ext, e := range edits {
		if cs := byExt[ext]; len(cs) != 1 || cs[0].DisplayName != e.name {
			row.kept = false
			errs = append(errs, fmt.Errorf("after the full run %s is %v, want one contact named %q", ext, cs, e.name))
		}
	}
	errs = append(errs,
		expectEq("freshness writes", row.writes, len(edits)),
		expectEq("freshness patches", counts[sinchtest.OpUpdate], len(edits)),
		expectEq("writes without their edit", row.takenBack, 0),
		expectEq("full-run outcome", row.full.Outcome, state.OutcomeSucceeded))
	if len(edits) == 0 {
		errs = append(errs, errors.New("no edit was made while the full run paged"))
	}
	if len(errs) > 5 {
		errs = append(errs[:5], fmt.Errorf("and %d more", len(errs)-5))
	}
	logf("N=%d: freshness: %d edits during a full run of %s; lag p50 %s, p99 %s, max %s; %d incremental runs; %+v",
		row.n, len(edits), row.full.Duration.Round(time.Millisecond), fmtDur(row.quantile(0.5)), fmtDur(row.quantile(0.99)),
		fmtDur(row.quantile(1)), row.incrementals, counts)
	return row, errors.Join(errs...)
}

// quantile is the nearest-rank q-quantile of the lags.
func (r freshnessRow) quantile(q float64) time.Duration {
	if len(r.lags) == 0 {
		return 0
	}
	i := max(0, int(float64(len(r.lags))*q+0.999999)-1)
	return r.lags[min(i, len(r.lags)-1)]
}

// childFreshness runs, for the project, what `syncd run` runs for one with
// crm.notify: a LISTEN on the CRM's change channel feeding a sync.Daemon
// (its debounce and lanes as there), with one tick of the full schedule at
// the start. It stops once its stdin ends (the driver closes it) and
// reports every run its daemon made.
func childFreshness(ctx context.Context, a childArgs, res *childResult) error {
	store, err := state.Open(ctx, a.DatabaseURL, zap.NewNop())
	if err != nil {
		return err
	}
	defer store.Close()
	rec, err := a.reconciler(store)
	if err != nil {
		return err
	}
	rec.Options.AllowMassDelete = false // as syncd run: no --allow-mass-delete
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var d *contactsync.Daemon
	daemonSet := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		// The driver has seen every edit land; the run that landed the
		// last may still be recording its end, which stopping now would
		// cut short.
		select {
		case <-daemonSet:
			untilIdle(ctx, d, 30*time.Second)
		case <-ctx.Done():
		}
		cancel()
	}()

	changes := make(chan struct{}, 1)
	listening := make(chan struct{})
	listened := make(chan struct{})
	var once stdsync.Once
	go func() {
		defer close(listened)
		_ = store.Listen(ctx, []string{crm.NotifyChannel}, func() { once.Do(func() { close(listening) }) }, func(_, payload string) {
			if c := crm.ParseChange(payload); c.Renamed() {
				rec.NoteRename(c.OldID, c.NewID)
			}
			select {
			case changes <- struct{}{}:
			default: // a run is already asked for
			}
		})
	}()
	select {
	case <-listening:
	case <-ctx.Done():
		<-listened
		return ctx.Err()
	}

	var mu stdsync.Mutex
	ticks := make(chan state.RunKind, 1)
	ticks <- state.RunFull
	d = &contactsync.Daemon{
		Reconciler: rec, Logger: zap.NewNop(),
		Incremental: "@every 1h", Full: "@every 1h", // Ticks stands in for them
		Ticks: ticks,
		OnRun: func(rep contactsync.Report, err error) {
			r := freshRun{Kind: rep.Kind, Outcome: rep.Outcome, Duration: rep.Duration, Applied: rep.Applied,
				Skipped: rep.Skipped, Lookups: rep.Lookups, Errors: rep.Errors}
			if err != nil {
				r.Errors = append(r.Errors, err.Error())
			}
			mu.Lock()
			res.Runs = append(res.Runs, r)
			mu.Unlock()
		},
	}
	close(daemonSet)
	err = d.Run(ctx, changes)
	<-listened
	return err
}

// untilIdle returns once d has no run going, ctx ends or within has passed.
func untilIdle(ctx context.Context, d *contactsync.Daemon, within time.Duration) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for d.Busy() {
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			return
		case <-t.C:
		}
	}
}

func printFreshness(w io.Writer, rows []freshnessRow) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\nFreshness: a CRM edit every %s while a no-op full run pages, woken by NOTIFY as `syncd run` with crm.notify (lag: from the edit's commit to the emulator's answer to the write that carried it):\n\n", rows[0].every)
	fmt.Fprintln(w, "| N | latency (round trip) | full run | full-run list calls (min) | edits | p50 lag | p99 lag | max lag | incremental runs | look-ups (largest run) | writes (edits) | taken back |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		taken := strconv.Itoa(r.takenBack)
		if !r.kept {
			taken += " (an edited contact lost its edit)"
		}
		fmt.Fprintf(w, "| %d | %s (%.1f ms) | %s | %d (%d) | %d | %s | %s | %s | %d | %d (%d) | %d (%d) | %s |\n",
			r.n, r.latency, float64(r.rtt)/float64(time.Millisecond), fmtDur(r.full.Duration), r.fullLists, r.minList,
			len(r.lags), fmtDur(r.quantile(0.5)), fmtDur(r.quantile(0.99)), fmtDur(r.quantile(1)),
			r.incrementals, r.lookups, r.maxLookup, r.writes, len(r.lags), taken)
	}
	fmt.Fprintln(w)
	for _, r := range rows {
		fmt.Fprintf(w, "- N=%d freshness: the full run %s, %d created, %d patched, %d merged, %d deleted, %d writes skipped as changed under it\n",
			r.n, r.full.Outcome, r.full.Applied.Create, r.full.Applied.Patch, r.full.Applied.Merge, r.full.Applied.Delete, r.full.Skipped)
	}
}
