package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/metrics"
	"github.com/syncd/syncd/sinch"
	contactsync "github.com/syncd/syncd/sync"
)

// config loads the configuration the command line points at.
func (e *env) config(explicit bool) (Config, error) {
	return loadConfig(e.configPath, explicit, e.getenv)
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
		encCfg.EncodeLevel = zapcore.CapitalColorLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	} else {
		enc = zapcore.NewJSONEncoder(encCfg)
	}
	if e.console == nil {
		e.console = &console{w: e.stderr}
	}
	return zap.New(zapcore.NewCore(enc, e.console, level)), nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// deps are the long-lived parts a command works with.
type deps struct {
	cfg     Config
	log     *zap.Logger
	store   *crm.Store
	client  *sinch.Client
	metrics *metrics.Project // the project's view of registry, which its client and reconciler report to

	// registry holds every project's series, for /metrics.
	registry *metrics.Metrics
}

func (d *deps) Close() {
	if d.store != nil {
		_ = d.store.Close()
	}
	_ = d.log.Sync()
}

// open loads the configuration and connects to PostgreSQL and Sinch. A
// database whose schema is behind this binary's is refused in one line.
func (e *env) open(ctx context.Context) (*deps, error) {
	cfg, err := e.config(e.configExplicit)
	if err != nil {
		return nil, err
	}
	d, err := e.openWith(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := d.store.CheckMigrated(ctx); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

func (e *env) openWith(ctx context.Context, cfg Config) (*deps, error) {
	log, err := e.logger(cfg.Log)
	if err != nil {
		return nil, err
	}
	store, err := crm.Open(ctx, cfg.Database.URL, log)
	if err != nil {
		_ = log.Sync()
		return nil, fmt.Errorf("database.url: %w", err)
	}
	d, err := projectDeps(Project{Name: defaultProjectName, Config: cfg}, log, store, metrics.New())
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
// and a logger that names it. Closing them closes the store.
func projectDeps(p Project, log *zap.Logger, store *crm.Store, registry *metrics.Metrics) (*deps, error) {
	d := &deps{cfg: p.Config, log: log.With(zap.String("project", p.Name)), store: store,
		registry: registry, metrics: registry.Project(p.Name)}
	sc := p.Config.sinchConfig()
	sc.Logger = d.log
	sc.Observer = d.metrics
	var err error
	if d.client, err = sinch.NewClient(sc); err != nil {
		return nil, fmt.Errorf("sinch: %w", err)
	}
	d.metrics.WatchRateLimit(d.client.RateLimit)
	return d, nil
}

func (d *deps) reconciler(allowMassDelete bool) *contactsync.Reconciler {
	return &contactsync.Reconciler{
		Store:       d.store,
		Sinch:       d.client,
		Logger:      d.log,
		ProjectID:   d.cfg.Sinch.ProjectID,
		Source:      d.cfg.CRM.Source,
		BatchSize:   d.cfg.CRM.BatchSize,
		Concurrency: d.cfg.Sinch.MaxConcurrency,
		Options:     d.cfg.syncOptions(allowMassDelete),
		Observer:    d.metrics,
		LogPII:      d.cfg.Log.PII,
		// A successor waits this long for a run whose lock session died: two
		// lock checks for it to notice, one attempt for its calls to end.
		LockGrace: 2*crm.DefaultLockCheck + d.cfg.Sinch.Timeout,
	}
}
