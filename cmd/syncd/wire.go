package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/lease"
	"github.com/syncd/syncd/metrics"
	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/state"
	contactsync "github.com/syncd/syncd/sync"
)

// systemConfig is where the package installs the configuration; a
// variable so that tests can keep a host's own file out of them.
var systemConfig = "/etc/syncd/config.yaml"

// findConfig picks the configuration file: --config, else $SYNCD_CONFIG
// (either must exist), else ./config.yaml, else systemConfig, the first
// that exists; "" when none does, which leaves the environment and the
// defaults.
func (e *env) findConfig() {
	e.configPath, e.configExplicit = e.configFlag, true
	if e.configPath == "" {
		e.configPath = e.getenv("SYNCD_CONFIG")
	}
	if e.configPath != "" {
		return
	}
	e.configExplicit = false
	for _, p := range []string{"config.yaml", systemConfig} {
		if _, err := os.Stat(p); err == nil {
			e.configPath = p
			return
		}
	}
}

// configSource says where the configuration came from, for config check
// and the daemon's first log line.
func (e *env) configSource() string {
	if e.configPath == "" {
		return "no file (none of ./config.yaml, " + systemConfig + ") but the environment"
	}
	if abs, err := filepath.Abs(e.configPath); err == nil {
		return abs + " and the environment"
	}
	return e.configPath + " and the environment"
}

// config loads and validates the configuration the command line points at,
// and warns on stderr of the SYNCD_ variables it does not know.
func (e *env) config() (Config, error) {
	cfg, err := loadConfig(e.configPath, e.configExplicit, e.getenv)
	if err == nil {
		for _, w := range e.envWarnings(cfg) {
			fmt.Fprintf(e.stderr, "syncd: warning: %s\n", w)
		}
	}
	return cfg, err
}

// localConfig is config for the commands that call no Sinch: see
// loadLocalConfig.
func (e *env) localConfig() (Config, error) {
	cfg, err := loadLocalConfig(e.configPath, e.configExplicit, e.getenv)
	if err == nil {
		for _, w := range e.envWarnings(cfg) {
			fmt.Fprintf(e.stderr, "syncd: warning: %s\n", w)
		}
	}
	return cfg, err
}

// envWarnings names the SYNCD_ variables of the environment that cfg does
// not read: a typo (SYNCD_SINCH_KEYSECRET) or a project's variable for a
// project the configuration does not name would otherwise be ignored in
// silence. Each says what was probably meant.
func (e *env) envWarnings(cfg Config) []string {
	if e.environ == nil {
		return nil
	}
	known := []string{"SYNCD_CONFIG"}
	for _, o := range envOverrides {
		known = append(known, o.name)
		for _, p := range cfg.projects {
			if o.project && projectNameRE.MatchString(p.Name) {
				known = append(known, projectEnv(p.Name, o.name))
			}
		}
	}
	var out []string
	for _, kv := range e.environ() {
		name, _, _ := strings.Cut(kv, "=")
		// SYNCD_TEST_ variables are the test suite's (README.md).
		if !strings.HasPrefix(name, "SYNCD_") || strings.HasPrefix(name, "SYNCD_TEST_") || slices.Contains(known, name) {
			continue
		}
		msg := name + " is not a variable syncd reads, and is ignored"
		if hint := didYouMean(name, known, ""); hint != "" {
			msg += hint
		}
		out = append(out, msg)
	}
	slices.Sort(out)
	return out
}

// logger writes to stderr: readable on a terminal, JSON lines otherwise
// (journald, files, pipes).
func (e *env) logger(cfg LogConfig) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(cfg.Level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	format := cfg.Format
	if format == "auto" {
		format = "json"
		if isTerminal(e.stderr) {
			format = "console"
		}
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if format == "console" {
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		if e.colour(e.stderr) {
			encCfg.EncodeLevel = zapcore.CapitalColorLevelEncoder
		}
		enc = zapcore.NewConsoleEncoder(encCfg)
	} else {
		enc = zapcore.NewJSONEncoder(encCfg)
	}
	if e.console == nil {
		e.console = &console{w: e.stderr}
	}
	e.logLevel = zap.NewAtomicLevelAt(level)
	return zap.New(zapcore.NewCore(enc, e.console, e.logLevel)), nil
}

// colour says whether what syncd writes to w may be coloured: only on a
// terminal, and never with NO_COLOR set (https://no-color.org) or on a
// terminal that says it has no colours (TERM=dumb).
func (e *env) colour(w io.Writer) bool {
	return isTerminal(w) && e.getenv("NO_COLOR") == "" && e.getenv("TERM") != "dumb"
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// projectNames lists the names of the configuration's projects.
func projectNames(cfg Config) []string {
	var names []string
	for _, p := range cfg.Projects() {
		names = append(names, p.Name)
	}
	return names
}

// projects are the projects a command that can act on every one acts on:
// --project's, or all of them.
func (e *env) projects(cfg Config) ([]Project, error) {
	all := cfg.Projects()
	if e.project == "" {
		return all, nil
	}
	for _, p := range all {
		if p.Name == e.project {
			return []Project{p}, nil
		}
	}
	return nil, fmt.Errorf("--project %q: the configuration names %s", e.project, strings.Join(projectNames(cfg), ", "))
}

// oneProject is the project a command that acts on one acts on: --project's,
// or the configuration's only one. Of several, none is a default.
func (e *env) oneProject(cfg Config) (Project, error) {
	ps, err := e.projects(cfg)
	if err != nil {
		return Project{}, err
	}
	if len(ps) > 1 {
		return Project{}, fmt.Errorf("the configuration names several projects (%s): say which with --project", strings.Join(projectNames(cfg), ", "))
	}
	return ps[0], nil
}

// deps are the long-lived parts a command works with.
type deps struct {
	project string // the project's name, as --project takes it
	cfg     Config
	log     *zap.Logger
	store   *state.Store
	crm     *crm.Reader // over store's pool
	client  *sinch.Client
	metrics *metrics.Project // the project's view of registry, which its client and reconciler report to

	// registry holds every project's series, for /metrics.
	registry *metrics.Metrics
	// lastCall is when the client's last Sinch call ended (unix ns): a
	// run that makes calls is making progress (syncd run's watchdog).
	lastCall atomic.Int64
}

// callClock notes when each Sinch call ends, and passes it on.
type callClock struct {
	sinch.Observer
	last *atomic.Int64
}

func (c callClock) ObserveCall(op string, status int, d time.Duration) {
	c.last.Store(time.Now().UnixNano())
	c.Observer.ObserveCall(op, status, d)
}

func (d *deps) Close() {
	if d.store != nil {
		_ = d.store.Close()
	}
	_ = d.log.Sync()
}

// open loads the configuration and connects to PostgreSQL and to Sinch for
// the project the command acts on (oneProject). A database whose schema is
// behind this binary's is refused in one line.
func (e *env) open(ctx context.Context) (*deps, error) {
	cfg, err := e.config()
	if err != nil {
		return nil, err
	}
	p, err := e.oneProject(cfg)
	if err != nil {
		return nil, err
	}
	return e.openMigrated(ctx, p)
}

// openMigrated is openProject, refusing a database with migrations pending.
func (e *env) openMigrated(ctx context.Context, p Project) (*deps, error) {
	d, err := e.openProject(ctx, p)
	if err != nil {
		return nil, err
	}
	if err := d.store.CheckMigrated(ctx); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// openLocal connects to PostgreSQL only, for the commands that read or
// prune syncd's state and call no Sinch (status, prune): no client, so no
// access key needed. A database with migrations pending is refused.
func (e *env) openLocal(ctx context.Context, cfg Config) (*deps, error) {
	log, err := e.logger(cfg.Log)
	if err != nil {
		return nil, err
	}
	store, err := state.Open(ctx, cfg.Database.URL, log)
	if err != nil {
		_ = log.Sync()
		return nil, fmt.Errorf("database.url: %w", err)
	}
	d := &deps{cfg: cfg, log: log, store: store}
	if err := store.CheckMigrated(ctx); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// openWith connects for one project's configuration, as open does without
// choosing the project; its logs name no project and its metrics are the
// default project's.
func (e *env) openWith(ctx context.Context, cfg Config) (*deps, error) {
	return e.openProject(ctx, Project{Config: cfg})
}

// openProject connects for p; every log line of the command names it.
func (e *env) openProject(ctx context.Context, p Project) (*deps, error) {
	log, err := e.logger(p.Config.Log)
	if err != nil {
		return nil, err
	}
	store, err := state.Open(ctx, p.Config.Database.URL, log)
	if err != nil {
		_ = log.Sync()
		return nil, fmt.Errorf("database.url: %w", err)
	}
	d, err := projectDeps(p, log, store, metrics.New())
	if err != nil {
		_ = store.Close()
		_ = log.Sync()
		return nil, err
	}
	return d, nil
}

// projectDeps are the parts of one project over the store and registry
// that every project of the process shares: its own Sinch client (and so
// its own rate limit, as Sinch's limit is per project), its own series,
// and a logger that names it (unless p has no name: openWith's). Closing
// them closes the store.
func projectDeps(p Project, log *zap.Logger, store *state.Store, registry *metrics.Metrics) (*deps, error) {
	if p.Name != "" {
		log = log.With(zap.String("project", p.Name))
	}
	d := &deps{project: p.Name, cfg: p.Config, log: log, store: store, crm: crm.New(store.SQL()), registry: registry,
		metrics: registry.Project(cmp.Or(p.Name, defaultProjectName))}
	sc := p.Config.sinchConfig()
	sc.Logger = log
	sc.Observer = callClock{Observer: d.metrics, last: &d.lastCall}
	var err error
	if d.client, err = sinch.NewClient(sc); err != nil {
		return nil, fmt.Errorf("sinch: %w", err)
	}
	d.metrics.WatchRateLimit(d.client.RateLimit)
	return d, nil
}

func (d *deps) reconciler(allowMassDelete bool) *contactsync.Reconciler {
	return &contactsync.Reconciler{
		CRM:         d.crm,
		Links:       d.store,
		Identities:  d.store,
		Deferrals:   d.store,
		Journal:     d.store,
		Runs:        d.store,
		Watermarks:  d.store,
		Locks:       d.store,
		Sinch:       d.client,
		Logger:      d.log,
		ProjectID:   d.cfg.Sinch.ProjectID,
		Source:      d.cfg.source(),
		BatchSize:   d.cfg.CRM.BatchSize,
		Concurrency: d.cfg.Sinch.MaxConcurrency,
		Options:     d.cfg.syncOptions(allowMassDelete),
		Observer:    d.metrics,
		LogPII:      d.cfg.Log.PII,
		ScopeBound:  d.cfg.Sync.ScopeBound,
		// A successor waits this long for a run whose lock session died: two
		// lock checks for it to notice, one attempt for its calls to end.
		LockGrace: 2*lease.DefaultCheck + d.cfg.Sinch.Timeout,
	}
}
