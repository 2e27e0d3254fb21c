package metrics

import (
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/state"
)

const namespace = "syncd"

// labelProject names the Sinch project a series is about. Its values are
// the project names of the configuration, so the configuration bounds them.
const labelProject = "project"

// labelOther replaces a label value that is not on the label's list.
const labelOther = "other"

// The values each label accepts; anything else becomes labelOther. They are
// functions, not package variables, so that the package holds no global
// state, and they are the constants of the packages that define them: the
// client's operations in sinch, the run and journal vocabulary in state.

// sinchOps are the client's operations.
func sinchOps() []string {
	return []string{sinch.OpList, sinch.OpGet, sinch.OpCreate, sinch.OpUpdate, sinch.OpDelete, sinch.OpMerge, sinch.OpToken}
}

// runKinds are the kinds of run: full, incremental, a saved plan applied,
// and the processing of Sinch contact events.
func runKinds() []state.RunKind { return state.RunKinds() }

// runOutcomes are the outcomes of a finished run.
func runOutcomes() []state.Outcome { return state.FinishedOutcomes() }

// opKinds are the operations a plan sends.
func opKinds() []planner.OpKind { return planner.OpKinds() }

// opStatuses are the final journal statuses.
func opStatuses() []state.Status { return state.FinalStatuses() }

// skipReasons say why a scheduler tick started no run: this process is
// still busy with the previous one, or another process holds the advisory
// lock.
func skipReasons() []string { return []string{"running", "locked"} }

// Metrics holds syncd's collectors and the registry they are registered on.
// Create it with [New]; what is about one Sinch project is recorded through
// that project's [Project].
type Metrics struct {
	reg     *prometheus.Registry
	scrape  http.Handler // promhttp for reg, built once so its own counters register once
	now     func() time.Time
	calls   *prometheus.CounterVec
	callDur *prometheus.HistogramVec
	runs    *prometheus.CounterVec
	runDur  *prometheus.HistogramVec
	lastOK  *prometheus.GaugeVec
	ops     *prometheus.CounterVec
	rows    *prometheus.CounterVec
	defer_  *prometheus.CounterVec
	horizon *prometheus.GaugeVec
	lockDur *prometheus.HistogramVec
	skipped *prometheus.CounterVec
	held    *prometheus.GaugeVec
	active  *prometheus.GaugeVec
	op      *operational  // operations.go
	events  *eventMetrics // events.go

	mu       sync.Mutex
	projects map[string]*Project
}

// New creates the collectors and registers them, with the Go runtime and
// process collectors, on a new registry. Nothing touches the default
// registry, so any number of Metrics can live in one process (tests do).
func New() *Metrics {
	m := &Metrics{
		reg:      prometheus.NewRegistry(),
		now:      time.Now,
		projects: make(map[string]*Project),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "sinch_calls_total",
			Help:      "HTTP attempts made to the Sinch API, retries and token fetches included, by project, operation and HTTP status code (\"error\" when no answer came back).",
		}, []string{labelProject, "operation", "code"}),
		callDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "sinch_call_duration_seconds",
			Help:      "Duration of one HTTP attempt to the Sinch API.",
			// 5ms to 10s: a single attempt is cut off by the client's
			// per-request timeout, 10s by default.
			Buckets: prometheus.DefBuckets,
		}, []string{labelProject, "operation"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "runs_total",
			Help:      "Finished sync runs, by project, kind and outcome.",
		}, []string{labelProject, "kind", "outcome"}),
		runDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "run_duration_seconds",
			Help:      "Duration of a sync run, whatever its outcome.",
			// 0.25s to about 2.3h: an incremental run takes seconds, a full
			// one waits on ceil(N/20) sequential list calls, which is
			// minutes to hours for large projects.
			Buckets: prometheus.ExponentialBuckets(0.25, 2, 16),
		}, []string{labelProject, "kind"}),
		lastOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "last_success_timestamp_seconds",
			Help:      "Unix time at which the last succeeded run of this project and kind finished. Absent until one has.",
		}, []string{labelProject, "kind"}),
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "operations_total",
			Help:      "Planned operations on Sinch contacts that reached a final status, by project, kind and status.",
		}, []string{labelProject, "kind", "status"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "rejected_rows_total",
			Help:      "CRM rows and contacts that could not be synced and were skipped.",
		}, []string{labelProject}),
		defer_: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "changes_deferred_total",
			Help:      "Changes a partial run left to the next full run (their scope grew past sync.scope_bound), by project and run kind.",
		}, []string{labelProject, "kind"}),
		horizon: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "read_horizon_held_seconds",
			Help:      "How far the oldest open transaction of the CRM's database held the incremental watermark back behind the server's clock when the last run started.",
		}, []string{labelProject}),
		lockDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "lock_wait_seconds",
			Help:      "Time spent acquiring the per-project advisory lock.",
			// 1ms to about 4.4 min: uncontended it is one round trip to
			// PostgreSQL; contended it lasts as long as another process's run.
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{labelProject}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "ticks_skipped_total",
			Help:      "Scheduler ticks that started no run, by project, run kind and reason (\"running\": this process is still busy with the previous run; \"locked\": another process holds the lock).",
		}, []string{labelProject, "kind", "reason"}),
		held: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "lock_held",
			Help:      "1 while this process holds the project's advisory lock, else 0.",
		}, []string{labelProject}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "project_active",
			Help:      "1 while this process is the active one for the project, 0 while it stands by. Absent until the daemon has said which.",
		}, []string{labelProject}),
		events: newEventMetrics(),
	}
	m.op = newOperational(m)
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.calls, m.callDur, m.runs, m.runDur, m.lastOK, m.ops, m.rows, m.defer_, m.horizon, m.lockDur, m.skipped, m.held, m.active,
	)
	m.reg.MustRegister(m.op.collectors()...)
	m.reg.MustRegister(m.events.collectors()...)

	m.scrape = promhttp.InstrumentMetricHandler(m.reg, promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		// Count failed collections in promhttp_metric_handler_errors_total.
		Registry: m.reg,
		// Serve what could be collected rather than a 500: under a
		// hardened unit the process collector may not read all of /proc,
		// and that must not cost the syncd_ metrics.
		ErrorHandling: promhttp.ContinueOnError,
	}))
	return m
}

// Registry returns the registry all of m's collectors are registered on,
// for a caller that wants to add its own or gather directly.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// Project is what m records about one Sinch project: every series it
// touches carries project="name". Its methods make it a sinch.Observer, a
// sync.Observer and a webhook.Observer. A nil *Project records nothing.
type Project struct {
	m         *Metrics
	name      string
	calls     *prometheus.CounterVec
	callDur   prometheus.ObserverVec
	runs      *prometheus.CounterVec
	runDur    prometheus.ObserverVec
	lastOK    *prometheus.GaugeVec
	ops       *prometheus.CounterVec
	rows      prometheus.Counter
	deferred  *prometheus.CounterVec
	horizon   prometheus.Gauge
	lockDur   prometheus.Observer
	skipped   *prometheus.CounterVec
	held      prometheus.Gauge
	projectOp               // operations.go
	events    projectEvents // events.go
}

// Project returns the view of m for the project called name (the
// configuration's project name, "default" for a configuration without a
// projects: list). Every call with the same name returns the same view.
// The first one creates the project's series of fixed label values at 0,
// so that rate() and increase() see the first increment instead of a
// series appearing out of nowhere, and an alert on failures has something
// to compare against. The Sinch series are left out (status codes are not
// known in advance), and so is the last-success gauge, whose 0 would read
// as "1970". A nil m returns a nil *Project.
func (m *Metrics) Project(name string) *Project {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if p, ok := m.projects[name]; ok {
		return p
	}
	l := prometheus.Labels{labelProject: name}
	p := &Project{
		m:        m,
		name:     name,
		calls:    m.calls.MustCurryWith(l),
		callDur:  m.callDur.MustCurryWith(l),
		runs:     m.runs.MustCurryWith(l),
		runDur:   m.runDur.MustCurryWith(l),
		lastOK:   m.lastOK.MustCurryWith(l),
		ops:      m.ops.MustCurryWith(l),
		rows:     m.rows.With(l),
		deferred: m.defer_.MustCurryWith(l),
		horizon:  m.horizon.With(l),
		lockDur:  m.lockDur.With(l),
		skipped:  m.skipped.MustCurryWith(l),
		held:     m.held.With(l),
		projectOp: projectOp{
			period:   m.op.period.MustCurryWith(l),
			withheld: m.op.withheld.MustCurryWith(l),
		},
		events: m.events.curry(l),
	}
	for _, kind := range runKinds() {
		for _, outcome := range runOutcomes() {
			p.runs.WithLabelValues(string(kind), string(outcome))
		}
		for _, reason := range skipReasons() {
			p.skipped.WithLabelValues(string(kind), reason)
		}
		p.deferred.WithLabelValues(string(kind))
	}
	for _, kind := range opKinds() {
		for _, status := range opStatuses() {
			p.ops.WithLabelValues(string(kind), string(status))
		}
	}
	m.projects[name] = p
	return p
}

// projectList returns m's projects, for the collectors that read them at
// every scrape.
func (m *Metrics) projectList() []*Project {
	m.mu.Lock()
	defer m.mu.Unlock()
	ps := make([]*Project, 0, len(m.projects))
	for _, p := range m.projects {
		ps = append(ps, p)
	}
	return ps
}

// ObserveCall records one HTTP attempt to Sinch; it makes *Project a
// sinch.Observer. statusCode 0 means no answer came back (a timeout, a
// refused connection) and is counted as code "error".
func (p *Project) ObserveCall(op string, statusCode int, d time.Duration) {
	if p == nil {
		return
	}
	op = bounded(op, sinchOps())
	p.calls.WithLabelValues(op, codeLabel(statusCode)).Inc()
	p.callDur.WithLabelValues(op).Observe(seconds(d))
}

// RunFinished records a finished run of kind ("full", "incremental") with
// outcome ("succeeded", "failed", "interrupted") after d. A succeeded run
// also sets syncd_last_success_timestamp_seconds{kind} to now.
func (p *Project) RunFinished(kind state.RunKind, outcome state.Outcome, d time.Duration) {
	if p == nil {
		return
	}
	k, o := bounded(kind, runKinds()), bounded(outcome, runOutcomes())
	p.runs.WithLabelValues(k, o).Inc()
	p.runDur.WithLabelValues(k).Observe(seconds(d))
	if outcome == state.OutcomeSucceeded {
		p.lastOK.WithLabelValues(k).SetToCurrentTime()
	}
}

// OperationFinished records one planned operation that reached a final
// status: kind is create, patch, merge or delete; status is done, failed,
// rejected or skipped.
func (p *Project) OperationFinished(kind planner.OpKind, status state.Status) {
	if p == nil {
		return
	}
	p.ops.WithLabelValues(bounded(kind, opKinds()), bounded(status, opStatuses())).Inc()
}

// RowsRejected adds n rejected rows. n <= 0 records nothing (a counter
// cannot go down, and client_golang would panic).
func (p *Project) RowsRejected(n int) {
	if p == nil || n <= 0 {
		return
	}
	p.rows.Add(float64(n))
}

// ChangesDeferred adds n changes a partial run of kind left to the next
// full run.
func (p *Project) ChangesDeferred(kind state.RunKind, n int) {
	if p == nil || n <= 0 {
		return
	}
	p.deferred.WithLabelValues(bounded(kind, runKinds())).Add(float64(n))
}

// ReadHorizonHeld records how far open CRM transactions held the
// watermark back when a run started.
func (p *Project) ReadHorizonHeld(d time.Duration) {
	if p == nil {
		return
	}
	p.horizon.Set(seconds(d))
}

// LockWaited records how long acquiring the advisory lock took, whether or
// not it was acquired.
func (p *Project) LockWaited(d time.Duration) {
	if p == nil {
		return
	}
	p.lockDur.Observe(seconds(d))
}

// TickSkipped records a scheduler tick for a run of kind that started
// nothing, because a run is still going in this process (reason "running")
// or another process holds the lock ("locked").
func (p *Project) TickSkipped(kind state.RunKind, reason string) {
	if p == nil {
		return
	}
	p.skipped.WithLabelValues(bounded(kind, runKinds()), bounded(reason, skipReasons())).Inc()
}

// SetLockHeld records whether this process holds the project's advisory
// lock.
func (p *Project) SetLockHeld(held bool) {
	if p == nil {
		return
	}
	p.lockHeld(p.m.now, held)
	p.held.Set(boolValue(held))
}

// SetActive records whether this process is the active one for the
// project (true) or stands by (false). Until the first call the series is
// absent: a process that has not said is neither.
func (p *Project) SetActive(active bool) {
	if p == nil {
		return
	}
	p.m.active.WithLabelValues(p.name).Set(boolValue(active))
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// codeLabel turns an HTTP status into the code label: "error" for no
// answer, the number for a real status, "other" for anything else, so a
// bogus value cannot add series.
func codeLabel(status int) string {
	switch {
	case status == 0:
		return "error"
	case status >= 100 && status <= 599:
		return strconv.Itoa(status)
	default:
		return labelOther
	}
}

func bounded[T ~string](v T, allowed []T) string {
	if slices.Contains(allowed, v) {
		return string(v)
	}
	return labelOther
}

// seconds clamps a negative duration, which only a broken clock can
// produce, to 0 rather than letting it lower a histogram's sum.
func seconds(d time.Duration) float64 {
	return max(d, 0).Seconds()
}
