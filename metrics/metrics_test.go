package metrics_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/syncd/syncd/metrics"
	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/state"
	contactsync "github.com/syncd/syncd/sync"
)

// *Project is what the Sinch client and the reconciler report to.
var (
	_ sinch.Observer       = (*metrics.Project)(nil)
	_ contactsync.Observer = (*metrics.Project)(nil)
)

func TestObserveCall(t *testing.T) {
	type call struct {
		op     string
		status int
		d      time.Duration
	}
	tests := []struct {
		name   string
		calls  []call
		want   map[string]float64
		absent []string
	}{
		{
			name:  "one answered call",
			calls: []call{{sinch.OpList, 200, 250 * time.Millisecond}},
			want: map[string]float64{
				`syncd_sinch_calls_total{code="200",operation="list"}`:                  1,
				`syncd_sinch_call_duration_seconds_count{operation="list"}`:             1,
				`syncd_sinch_call_duration_seconds_sum{operation="list"}`:               0.25,
				`syncd_sinch_call_duration_seconds_bucket{le="0.1",operation="list"}`:   0,
				`syncd_sinch_call_duration_seconds_bucket{le="0.25",operation="list"}`:  1,
				`syncd_sinch_call_duration_seconds_bucket{le="+Inf",operation="list"}`:  1,
				`syncd_sinch_call_duration_seconds_bucket{le="10",operation="list"}`:    1,
				`syncd_sinch_call_duration_seconds_bucket{le="0.005",operation="list"}`: 0,
				`syncd_sinch_call_duration_seconds_bucket{le="0.5",operation="list"}`:   1,
				`syncd_sinch_call_duration_seconds_bucket{le="2.5",operation="list"}`:   1,
				`syncd_sinch_call_duration_seconds_bucket{le="0.05",operation="list"}`:  0,
				`syncd_sinch_call_duration_seconds_bucket{le="0.025",operation="list"}`: 0,
				`syncd_sinch_call_duration_seconds_bucket{le="0.01",operation="list"}`:  0,
				`syncd_sinch_call_duration_seconds_bucket{le="1",operation="list"}`:     1,
				`syncd_sinch_call_duration_seconds_bucket{le="5",operation="list"}`:     1,
			},
		},
		{
			name:  "no answer is code error",
			calls: []call{{sinch.OpCreate, 0, 10 * time.Second}},
			want: map[string]float64{
				`syncd_sinch_calls_total{code="error",operation="create"}`:             1,
				`syncd_sinch_call_duration_seconds_sum{operation="create"}`:            10,
				`syncd_sinch_call_duration_seconds_bucket{le="5",operation="create"}`:  0,
				`syncd_sinch_call_duration_seconds_bucket{le="10",operation="create"}`: 1,
			},
			absent: []string{`syncd_sinch_calls_total{code="0",operation="create"}`},
		},
		{
			name: "every attempt of a retried call counts",
			calls: []call{
				{sinch.OpUpdate, 429, 500 * time.Millisecond},
				{sinch.OpUpdate, 503, 500 * time.Millisecond},
				{sinch.OpUpdate, 429, 500 * time.Millisecond},
				{sinch.OpUpdate, 200, 500 * time.Millisecond},
			},
			want: map[string]float64{
				`syncd_sinch_calls_total{code="429",operation="update"}`:      2,
				`syncd_sinch_calls_total{code="503",operation="update"}`:      1,
				`syncd_sinch_calls_total{code="200",operation="update"}`:      1,
				`syncd_sinch_call_duration_seconds_count{operation="update"}`: 4,
				`syncd_sinch_call_duration_seconds_sum{operation="update"}`:   2,
			},
		},
		{
			name:  "operations are kept apart",
			calls: []call{{sinch.OpToken, 200, 0}, {sinch.OpDelete, 404, 0}, {sinch.OpMerge, 200, 0}, {sinch.OpGet, 200, 0}},
			want: map[string]float64{
				`syncd_sinch_calls_total{code="200",operation="token"}`:  1,
				`syncd_sinch_calls_total{code="404",operation="delete"}`: 1,
				`syncd_sinch_calls_total{code="200",operation="merge"}`:  1,
				`syncd_sinch_calls_total{code="200",operation="get"}`:    1,
			},
		},
		{
			name:  "an unknown operation is other",
			calls: []call{{"get contact 01HX5", 200, time.Second}},
			want: map[string]float64{
				`syncd_sinch_calls_total{code="200",operation="other"}`:      1,
				`syncd_sinch_call_duration_seconds_count{operation="other"}`: 1,
			},
			absent: []string{`syncd_sinch_calls_total{code="200",operation="get contact 01HX5"}`},
		},
		{
			name:  "a status outside HTTP's range is other",
			calls: []call{{sinch.OpList, 1000, 0}, {sinch.OpList, -1, 0}, {sinch.OpList, 99, 0}},
			want: map[string]float64{
				`syncd_sinch_calls_total{code="other",operation="list"}`: 3,
			},
		},
		{
			name:  "a negative duration counts as zero",
			calls: []call{{sinch.OpList, 200, -time.Second}},
			want: map[string]float64{
				`syncd_sinch_call_duration_seconds_sum{operation="list"}`:               0,
				`syncd_sinch_call_duration_seconds_bucket{le="0.005",operation="list"}`: 1,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, p := newProject()
			for _, c := range tt.calls {
				p.ObserveCall(c.op, c.status, c.d)
			}
			checkSamples(t, scrapeProject(t, m), tt.want, tt.absent)
		})
	}
}

func TestRunFinished(t *testing.T) {
	type run struct {
		kind    state.RunKind
		outcome state.Outcome
		d       time.Duration
	}
	tests := []struct {
		name        string
		runs        []run
		want        map[string]float64
		absent      []string
		lastSuccess []string // kinds whose last-success timestamp must be now
	}{
		{
			name: "a succeeded full run",
			runs: []run{{state.RunFull, state.OutcomeSucceeded, 90 * time.Second}},
			want: map[string]float64{
				`syncd_runs_total{kind="full",outcome="succeeded"}`:        1,
				`syncd_runs_total{kind="full",outcome="failed"}`:           0,
				`syncd_run_duration_seconds_count{kind="full"}`:            1,
				`syncd_run_duration_seconds_sum{kind="full"}`:              90,
				`syncd_run_duration_seconds_bucket{kind="full",le="64"}`:   0,
				`syncd_run_duration_seconds_bucket{kind="full",le="128"}`:  1,
				`syncd_runs_total{kind="incremental",outcome="succeeded"}`: 0,
			},
			absent:      []string{`syncd_last_success_timestamp_seconds{kind="incremental"}`},
			lastSuccess: []string{"full"},
		},
		{
			name: "a failed run leaves the last success alone",
			runs: []run{{state.RunIncremental, state.OutcomeFailed, 2 * time.Second}},
			want: map[string]float64{
				`syncd_runs_total{kind="incremental",outcome="failed"}`:    1,
				`syncd_runs_total{kind="incremental",outcome="succeeded"}`: 0,
				`syncd_run_duration_seconds_sum{kind="incremental"}`:       2,
			},
			absent: []string{
				`syncd_last_success_timestamp_seconds{kind="incremental"}`,
				`syncd_last_success_timestamp_seconds{kind="full"}`,
			},
		},
		{
			name: "an interrupted run is neither success nor failure",
			runs: []run{{state.RunFull, state.OutcomeInterrupted, time.Second}},
			want: map[string]float64{
				`syncd_runs_total{kind="full",outcome="interrupted"}`: 1,
				`syncd_runs_total{kind="full",outcome="failed"}`:      0,
			},
			absent: []string{`syncd_last_success_timestamp_seconds{kind="full"}`},
		},
		{
			name: "a success after a failure",
			runs: []run{
				{state.RunIncremental, state.OutcomeFailed, time.Second},
				{state.RunIncremental, state.OutcomeSucceeded, time.Second},
				{state.RunIncremental, state.OutcomeSucceeded, time.Second},
			},
			want: map[string]float64{
				`syncd_runs_total{kind="incremental",outcome="failed"}`:    1,
				`syncd_runs_total{kind="incremental",outcome="succeeded"}`: 2,
				`syncd_run_duration_seconds_count{kind="incremental"}`:     3,
			},
			lastSuccess: []string{"incremental"},
		},
		{
			name: "unknown kinds and outcomes are other",
			runs: []run{{"nightly-42", "exploded", time.Second}, {"nightly-42", state.OutcomeSucceeded, time.Second}, {state.RunFull, state.OutcomeRunning, time.Second}},
			want: map[string]float64{
				`syncd_runs_total{kind="other",outcome="other"}`:     1,
				`syncd_runs_total{kind="other",outcome="succeeded"}`: 1,
				`syncd_runs_total{kind="full",outcome="other"}`:      1,
				`syncd_run_duration_seconds_count{kind="other"}`:     2,
			},
			absent:      []string{`syncd_runs_total{kind="nightly-42",outcome="exploded"}`, `syncd_last_success_timestamp_seconds{kind="full"}`},
			lastSuccess: []string{"other"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, p := newProject()
			before := time.Now().Unix()
			for _, r := range tt.runs {
				p.RunFinished(r.kind, r.outcome, r.d)
			}
			after := time.Now().Unix() + 1 // the gauge keeps sub-second precision
			got := scrapeProject(t, m)
			checkSamples(t, got, tt.want, tt.absent)
			for _, kind := range tt.lastSuccess {
				key := `syncd_last_success_timestamp_seconds{kind="` + kind + `"}`
				ts, ok := got[key]
				if !ok || ts < float64(before) || ts > float64(after) {
					t.Errorf("%s = %v (exposed %v), want a time in [%d, %d]", key, ts, ok, before, after)
				}
			}
		})
	}
}

func TestOperationFinished(t *testing.T) {
	tests := []struct {
		name       string
		kind       planner.OpKind
		status     state.Status
		wantKey    string
		wantAbsent string
	}{
		{"created", planner.OpCreate, state.StatusDone, `syncd_operations_total{kind="create",status="done"}`, ""},
		{"patch failed", planner.OpPatch, state.StatusFailed, `syncd_operations_total{kind="patch",status="failed"}`, ""},
		{"merge skipped", planner.OpMerge, state.StatusSkipped, `syncd_operations_total{kind="merge",status="skipped"}`, ""},
		{"delete rejected", planner.OpDelete, state.StatusRejected, `syncd_operations_total{kind="delete",status="rejected"}`, ""},
		{"unknown kind", "upsert", state.StatusDone, `syncd_operations_total{kind="other",status="done"}`, `syncd_operations_total{kind="upsert",status="done"}`},
		{"pending is not final", planner.OpCreate, state.StatusPending, `syncd_operations_total{kind="create",status="other"}`, `syncd_operations_total{kind="create",status="pending"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, p := newProject()
			p.OperationFinished(tt.kind, tt.status)
			p.OperationFinished(tt.kind, tt.status)
			var absent []string
			if tt.wantAbsent != "" {
				absent = append(absent, tt.wantAbsent)
			}
			checkSamples(t, scrapeProject(t, m), map[string]float64{tt.wantKey: 2}, absent)
		})
	}
}

func TestRowsRejected(t *testing.T) {
	tests := []struct {
		name string
		adds []int
		want float64
	}{
		{"none yet", nil, 0},
		{"adds up", []int{3, 1}, 4},
		{"zero and negative are ignored", []int{2, 0, -5}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, p := newProject()
			for _, n := range tt.adds {
				p.RowsRejected(n)
			}
			checkSamples(t, scrapeProject(t, m), map[string]float64{`syncd_rejected_rows_total`: tt.want}, nil)
		})
	}
}

func TestLockWaited(t *testing.T) {
	tests := []struct {
		name  string
		waits []time.Duration
		want  map[string]float64
	}{
		{
			name: "nothing yet",
			want: map[string]float64{`syncd_lock_wait_seconds_count`: 0, `syncd_lock_wait_seconds_bucket{le="+Inf"}`: 0},
		},
		{
			name:  "uncontended and contended",
			waits: []time.Duration{500 * time.Microsecond, 2 * time.Millisecond, 8 * time.Second},
			want: map[string]float64{
				`syncd_lock_wait_seconds_count`:               3,
				`syncd_lock_wait_seconds_bucket{le="0.001"}`:  1,
				`syncd_lock_wait_seconds_bucket{le="0.004"}`:  2,
				`syncd_lock_wait_seconds_bucket{le="4.096"}`:  2,
				`syncd_lock_wait_seconds_bucket{le="16.384"}`: 3,
				`syncd_lock_wait_seconds_bucket{le="+Inf"}`:   3,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, p := newProject()
			for _, d := range tt.waits {
				p.LockWaited(d)
			}
			checkSamples(t, scrapeProject(t, m), tt.want, nil)
		})
	}
}

func TestTickSkipped(t *testing.T) {
	tests := []struct {
		name    string
		kind    state.RunKind
		reason  string
		wantKey string
	}{
		{"still running", state.RunIncremental, "running", `syncd_ticks_skipped_total{kind="incremental",reason="running"}`},
		{"locked elsewhere", state.RunFull, "locked", `syncd_ticks_skipped_total{kind="full",reason="locked"}`},
		{"unknown reason", state.RunFull, "tired", `syncd_ticks_skipped_total{kind="full",reason="other"}`},
		{"unknown kind", "hourly", "locked", `syncd_ticks_skipped_total{kind="other",reason="locked"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, p := newProject()
			p.TickSkipped(tt.kind, tt.reason)
			got := scrapeProject(t, m)
			checkSamples(t, got, map[string]float64{tt.wantKey: 1}, nil)
			// The other known combinations stay at 0.
			for _, k := range []string{"full", "incremental"} {
				for _, r := range []string{"running", "locked"} {
					key := `syncd_ticks_skipped_total{kind="` + k + `",reason="` + r + `"}`
					if key != tt.wantKey {
						checkSamples(t, got, map[string]float64{key: 0}, nil)
					}
				}
			}
		})
	}
}

func TestSetLockHeld(t *testing.T) {
	tests := []struct {
		name string
		sets []bool
		want float64
	}{
		{"never held", nil, 0},
		{"acquired", []bool{true}, 1},
		{"acquired twice", []bool{true, true}, 1},
		{"released", []bool{true, false}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, p := newProject()
			for _, held := range tt.sets {
				p.SetLockHeld(held)
			}
			checkSamples(t, scrapeProject(t, m), map[string]float64{`syncd_lock_held`: tt.want}, nil)
		})
	}
}

// syncdMetrics are the names of every metric family the package defines.
var syncdMetrics = []string{
	"syncd_sinch_calls_total", "syncd_sinch_call_duration_seconds",
	"syncd_runs_total", "syncd_run_duration_seconds", "syncd_last_success_timestamp_seconds",
	"syncd_operations_total", "syncd_rejected_rows_total", "syncd_changes_deferred_total", "syncd_read_horizon_held_seconds", "syncd_lock_wait_seconds",
	"syncd_ticks_skipped_total", "syncd_lock_held", "syncd_project_active",
	"syncd_start_time_seconds", "syncd_schedule_period_seconds", "syncd_deletes_withheld",
	"syncd_lock_held_seconds", "syncd_sinch_rate_limit_rps",
	"syncd_webhook_events_received_total", "syncd_webhook_events_duplicate_total",
	"syncd_webhook_callbacks_refused_total", "syncd_webhook_events_applied_total", "syncd_webhook_event_lag_seconds",
	"syncd_webhook_events_parked",
}

// processMetrics are the families about the process, not a project: the
// only syncd_ ones without a project label.
var processMetrics = []string{"syncd_start_time_seconds"}

// Series a fresh Metrics exposes before any hook is called: none about a
// project until Project is called, then every combination of the fixed
// label values for each project, at 0.
func TestSeriesBeforeAnyHook(t *testing.T) {
	perProject := []struct {
		name string
		want int
	}{
		{"syncd_runs_total", len(state.RunKinds()) * len(state.FinishedOutcomes())},
		{"syncd_operations_total", len(planner.OpKinds()) * len(state.FinalStatuses())},
		{"syncd_ticks_skipped_total", len(state.RunKinds()) * 2},
		{"syncd_rejected_rows_total", 1},
		{"syncd_lock_wait_seconds", 1},
		{"syncd_lock_held", 1},
		{"syncd_lock_held_seconds", 1},
		{"syncd_webhook_events_duplicate_total", 1},
		{"syncd_webhook_event_lag_seconds", 1},
		{"syncd_webhook_events_parked", 1},
		{"syncd_sinch_calls_total", 0},
		{"syncd_last_success_timestamp_seconds", 0},
		{"syncd_project_active", 0},
		{"syncd_sinch_rate_limit_rps", 0},
	}
	for _, projects := range []int{0, 1, 2} {
		m := metrics.New()
		for i := range projects {
			m.Project(fmt.Sprintf("p%d", i))
		}
		for _, tt := range perProject {
			t.Run(fmt.Sprintf("%s/%d projects", tt.name, projects), func(t *testing.T) {
				n, err := testutil.GatherAndCount(m.Registry(), tt.name)
				if err != nil {
					t.Fatal(err)
				}
				if n != tt.want*projects {
					t.Errorf("%d series, want %d", n, tt.want*projects)
				}
			})
		}
		t.Run(fmt.Sprintf("syncd_start_time_seconds/%d projects", projects), func(t *testing.T) {
			if n, err := testutil.GatherAndCount(m.Registry(), "syncd_start_time_seconds"); err != nil || n != 1 {
				t.Errorf("%d series (%v), want 1", n, err)
			}
		})
	}
}

// recordAll calls every method of p once, so that every family has a
// series of p.
func recordAll(p *metrics.Project) {
	p.ObserveCall(sinch.OpList, 200, time.Millisecond)
	p.RunFinished(state.RunFull, state.OutcomeSucceeded, time.Second)
	p.OperationFinished(planner.OpCreate, state.StatusDone)
	p.RowsRejected(1)
	p.LockWaited(time.Millisecond)
	p.TickSkipped(state.RunFull, "locked")
	p.SetLockHeld(true)
	p.SetActive(true)
	p.SetSchedule(state.RunFull, cronEvery(time.Hour))
	p.DeletesWithheld(state.RunFull, 3)
	p.WatchRateLimit(func() float64 { return 20 })
	p.CallbackReceived("CONTACT_CREATE", true)
	p.CallbackRefused("stale")
	p.EventApplied("CONTACT_CREATE", time.Second)
}

// Every series of a syncd_ family carries the project it is about, but
// the process's own; the Go runtime and process collectors carry none.
func TestProjectLabel(t *testing.T) {
	m := metrics.New()
	recordAll(m.Project("eu"))
	recordAll(m.Project("us"))
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]map[string]bool{} // family -> projects
	for _, f := range families {
		name := f.GetName()
		for _, sample := range f.GetMetric() {
			project, labelled := "", false
			for _, l := range sample.GetLabel() {
				if l.GetName() == "project" {
					project, labelled = l.GetValue(), true
				}
			}
			switch {
			case !strings.HasPrefix(name, "syncd_") || slices.Contains(processMetrics, name):
				if labelled {
					t.Errorf("%s has a project label (%q)", name, project)
				}
			case !labelled:
				t.Errorf("%s %v has no project label", name, sample.GetLabel())
			default:
				if seen[name] == nil {
					seen[name] = map[string]bool{}
				}
				seen[name][project] = true
			}
		}
	}
	for _, name := range syncdMetrics {
		if slices.Contains(processMetrics, name) {
			continue
		}
		if !seen[name]["eu"] || !seen[name]["us"] || len(seen[name]) != 2 {
			t.Errorf("%s: projects %v, want eu and us", name, seen[name])
		}
	}
}

// What one project records shows in its series only.
func TestProjectsAreKeptApart(t *testing.T) {
	tests := []struct {
		name   string
		record func(p *metrics.Project)
		key    string // as ofProject keys it
		want   float64
	}{
		{"call", func(p *metrics.Project) { p.ObserveCall(sinch.OpList, 503, time.Second) }, `syncd_sinch_calls_total{code="503",operation="list"}`, 1},
		{"run", func(p *metrics.Project) {
			p.RunFinished(state.RunIncremental, state.OutcomeFailed, time.Second)
		},
			`syncd_runs_total{kind="incremental",outcome="failed"}`, 1},
		{"operation", func(p *metrics.Project) { p.OperationFinished(planner.OpDelete, state.StatusDone) },
			`syncd_operations_total{kind="delete",status="done"}`, 1},
		{"rows rejected", func(p *metrics.Project) { p.RowsRejected(7) }, `syncd_rejected_rows_total`, 7},
		{"changes deferred", func(p *metrics.Project) { p.ChangesDeferred(state.RunEvents, 3) }, `syncd_changes_deferred_total{kind="event"}`, 3},
		{"read horizon held", func(p *metrics.Project) { p.ReadHorizonHeld(90 * time.Second) }, `syncd_read_horizon_held_seconds`, 90},
		{"lock waited", func(p *metrics.Project) { p.LockWaited(time.Second) }, `syncd_lock_wait_seconds_count`, 1},
		{"tick skipped", func(p *metrics.Project) { p.TickSkipped(state.RunFull, "locked") }, `syncd_ticks_skipped_total{kind="full",reason="locked"}`, 1},
		{"lock held", func(p *metrics.Project) { p.SetLockHeld(true) }, `syncd_lock_held`, 1},
		{"active", func(p *metrics.Project) { p.SetActive(true) }, `syncd_project_active`, 1},
		{"deletes withheld", func(p *metrics.Project) { p.DeletesWithheld(state.RunFull, 9) }, `syncd_deletes_withheld{kind="full"}`, 9},
		{"schedule", func(p *metrics.Project) { p.SetSchedule(state.RunFull, cronEvery(time.Hour)) }, `syncd_schedule_period_seconds{kind="full"}`, 3600},
		{"rate limit", func(p *metrics.Project) { p.WatchRateLimit(func() float64 { return 2.5 }) }, `syncd_sinch_rate_limit_rps`, 2.5},
		{"callback", func(p *metrics.Project) { p.CallbackReceived("CONTACT_UPDATE", true) }, `syncd_webhook_events_duplicate_total`, 1},
		{"refused", func(p *metrics.Project) { p.CallbackRefused("replay") }, `syncd_webhook_callbacks_refused_total{reason="replay"}`, 1},
		{"event", func(p *metrics.Project) { p.EventApplied("CONTACT_UPDATE", time.Second) }, `syncd_webhook_events_applied_total{trigger="CONTACT_UPDATE"}`, 1},
		{"parked", func(p *metrics.Project) { p.EventsParked(3) }, `syncd_webhook_events_parked`, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := metrics.New()
			eu, us := m.Project("eu"), m.Project("us")
			tt.record(eu)
			got := scrape(t, m)
			if g := ofProject(got, "eu")[tt.key]; g != tt.want {
				t.Errorf("eu: %s = %v, want %v", tt.key, g, tt.want)
			}
			if g := ofProject(got, "us")[tt.key]; g != 0 {
				t.Errorf("us: %s = %v, want 0 or absent", tt.key, g)
			}
			tt.record(us)
			tt.record(us)
			got = scrape(t, m)
			if g := ofProject(got, "eu")[tt.key]; g != tt.want {
				t.Errorf("eu after us recorded: %s = %v, want %v", tt.key, g, tt.want)
			}
			if _, ok := ofProject(got, "us")[tt.key]; !ok {
				t.Errorf("us: %s not exposed", tt.key)
			}
		})
	}
}

// Asking for a project twice gives the same view, so two parts of the
// daemon that report about one project share its lock-hold start and rate.
func TestProjectIsOneView(t *testing.T) {
	m := metrics.New()
	if a, b := m.Project("eu"), m.Project("eu"); a != b {
		t.Error("two views of project eu")
	}
	if m.Project("eu") == m.Project("us") {
		t.Error("eu and us share a view")
	}
}

func TestSetActive(t *testing.T) {
	tests := []struct {
		name   string
		sets   []bool
		want   float64
		absent bool
	}{
		{"not said yet", nil, 0, true},
		{"active", []bool{true}, 1, false},
		{"standing by", []bool{false}, 0, false},
		{"took over", []bool{false, true}, 1, false},
		{"lost it", []bool{true, false}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, p := newProject()
			for _, a := range tt.sets {
				p.SetActive(a)
			}
			if tt.absent {
				checkSamples(t, scrapeProject(t, m), nil, []string{`syncd_project_active`})
				return
			}
			checkSamples(t, scrapeProject(t, m), map[string]float64{`syncd_project_active`: tt.want}, nil)
		})
	}
}

// Whatever strings callers pass, the number of series stays fixed: ids
// must never turn into labels.
func TestCardinalityIsBounded(t *testing.T) {
	m, p := newProject()
	for i := range 500 {
		junk := fmt.Sprintf("contact-%d", i)
		p.ObserveCall(junk, 600+i, time.Millisecond)
		p.RunFinished(state.RunKind(junk), state.Outcome(junk), time.Second)
		p.OperationFinished(planner.OpKind(junk), state.Status(junk))
		p.TickSkipped(state.RunKind(junk), junk)
	}
	tests := []struct {
		name string
		want int
	}{
		{"syncd_sinch_calls_total", 1},           // {operation="other",code="other"}
		{"syncd_sinch_call_duration_seconds", 1}, // {operation="other"}
		{"syncd_runs_total", len(state.RunKinds())*len(state.FinishedOutcomes()) + 1},
		{"syncd_run_duration_seconds", 1},
		{"syncd_operations_total", len(planner.OpKinds())*len(state.FinalStatuses()) + 1},
		{"syncd_ticks_skipped_total", len(state.RunKinds())*2 + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := testutil.GatherAndCount(m.Registry(), tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if n != tt.want {
				t.Errorf("%d series, want %d", n, tt.want)
			}
		})
	}
}

// The label values the metrics accept are the constants sinch and sync
// actually report; a new constant there without a change here would be
// counted as "other".
func TestLabelValuesMatchCallers(t *testing.T) {
	m, p := newProject()
	var want []string
	for _, op := range []string{sinch.OpList, sinch.OpGet, sinch.OpCreate, sinch.OpUpdate, sinch.OpDelete, sinch.OpMerge, sinch.OpToken} {
		p.ObserveCall(op, 200, 0)
		want = append(want, `syncd_sinch_calls_total{code="200",operation="`+op+`"}`)
	}
	for _, kind := range []state.RunKind{state.RunFull, state.RunIncremental, state.RunEvents} {
		for _, outcome := range []state.Outcome{state.OutcomeSucceeded, state.OutcomeFailed, state.OutcomeInterrupted} {
			p.RunFinished(kind, outcome, 0)
			want = append(want, `syncd_runs_total{kind="`+string(kind)+`",outcome="`+string(outcome)+`"}`)
		}
	}
	for _, kind := range []planner.OpKind{planner.OpCreate, planner.OpPatch, planner.OpMerge, planner.OpDelete} {
		for _, status := range []state.Status{state.StatusDone, state.StatusFailed, state.StatusRejected, state.StatusSkipped} {
			p.OperationFinished(kind, status)
			want = append(want, `syncd_operations_total{kind="`+string(kind)+`",status="`+string(status)+`"}`)
		}
	}
	got := scrapeProject(t, m)
	for _, k := range want {
		if got[k] != 1 {
			t.Errorf("%s = %v, want 1", k, got[k])
		}
	}
}

func TestLint(t *testing.T) {
	m := metrics.New()
	// Histogram and gauge vectors only appear once observed.
	recordAll(m.Project("eu"))
	problems, err := testutil.GatherAndLint(m.Registry(), syncdMetrics...)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	n, err := testutil.GatherAndCount(m.Registry(), syncdMetrics...)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("nothing gathered")
	}
}

func TestRegistriesAreSeparate(t *testing.T) {
	a, b := metrics.New(), metrics.New()
	a.Project(testProject).RowsRejected(5)
	b.Project(testProject)
	checkSamples(t, scrapeProject(t, a), map[string]float64{`syncd_rejected_rows_total`: 5}, nil)
	checkSamples(t, scrapeProject(t, b), map[string]float64{`syncd_rejected_rows_total`: 0}, nil)
	if a.Registry() == b.Registry() {
		t.Error("two Metrics share a registry")
	}
	n, err := testutil.GatherAndCount(prometheus.DefaultGatherer, syncdMetrics...)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d syncd series on the default registry, want 0", n)
	}
}

func TestRuntimeCollectors(t *testing.T) {
	got := scrape(t, metrics.New())
	for _, k := range []string{"go_goroutines", "process_start_time_seconds", "promhttp_metric_handler_errors_total{cause=\"gathering\"}"} {
		if _, ok := got[k]; !ok {
			t.Errorf("%s not exposed", k)
		}
	}
}

func TestNilMetricsRecordsNothing(t *testing.T) {
	var m *metrics.Metrics
	p := m.Project(testProject)
	if p != nil {
		t.Fatal("nil Metrics has a project view")
	}
	recordAll(p)
	if m.Registry() != nil {
		t.Error("nil Metrics has a registry")
	}
}
