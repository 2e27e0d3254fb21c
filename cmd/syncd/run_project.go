package main

import (
	"context"
	"fmt"
	"strings"
	stdsync "sync"
	"time"

	"go.uber.org/zap"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/metrics"
	contactsync "github.com/syncd/syncd/sync"
	"github.com/syncd/syncd/webhook"
)

// projectRun is one project as `syncd run` serves it: its callbacks are
// taken whether or not this process leads it, its schedules run only while
// it does.
type projectRun struct {
	d      *deps
	status *runStatus
	events *webhook.Store
	stored chan struct{} // a callback was stored: an event run is due

	mu     stdsync.Mutex
	dmn    *contactsync.Daemon // while its schedules run
	active bool                // this process leads the project
}

func newProjectRun(d *deps) *projectRun {
	return &projectRun{d: d, status: &runStatus{}, events: webhook.NewStore(d.store.DB()), stored: make(chan struct{}, 1)}
}

// wake asks for an event run.
func (p *projectRun) wake() {
	select {
	case p.stored <- struct{}{}:
	default: // one is already asked for
	}
}

// busy reports whether a run of the project is going in this process.
func (p *projectRun) busy() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dmn != nil && p.dmn.Busy()
}

func (p *projectRun) setDaemon(d *contactsync.Daemon) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dmn = d
}

// lead runs the project's schedules, CRM notifications, event runs and
// journal pruning until ctx ends: this process leads the project until then.
func (p *projectRun) lead(ctx context.Context) {
	d, cfg, log := p.d, p.d.cfg, p.d.log
	rec := d.reconciler(false)
	if cfg.Webhook.Listen != "" {
		rec.Events = p.events
	}

	var changes chan struct{}
	listening := make(chan struct{})
	listenDone := make(chan struct{})
	if cfg.CRM.Notify || cfg.Webhook.Listen != "" {
		if cfg.CRM.Notify {
			changes = make(chan struct{}, 1)
		}
		var once stdsync.Once
		go func() {
			defer close(listenDone)
			_ = listenForWakes(ctx, d, func() { once.Do(func() { close(listening) }) }, p.wake, func(payload string) {
				// A rename keeps its contact: the run re-keys it.
				if c := crm.ParseChange(payload); c.Renamed() {
					rec.NoteRename(c.OldID, c.NewID)
				}
				select {
				case changes <- struct{}{}:
				default: // a run is already asked for
				}
			})
		}()
	} else {
		close(listening)
		close(listenDone)
	}

	dmn := &contactsync.Daemon{
		Reconciler:  rec,
		Logger:      log,
		Incremental: cfg.Schedule.Incremental,
		Full:        cfg.Schedule.Full,
		OnSkip:      d.metrics.TickSkipped,
		// A first run at start catches up on what changed while no process
		// led the project (a full one when nothing was ever synced, or when
		// the last full run was cut short). It waits for a run still
		// holding the project lock: the last one of a leader that lost its
		// session.
		RunAtStart:  true,
		WaitAtStart: true,
	}
	if cfg.Webhook.Listen != "" {
		dmn.Events = p.stored
	}
	dmn.OnRun = func(rep contactsync.Report, err error) {
		inc, full := dmn.NextRuns()
		line := fmt.Sprintf("last run of %s: %s %s at %s (%s); next incremental %s, next full %s",
			p.d.project, rep.Kind, rep.Outcome, time.Now().Format(time.RFC3339), rep.Plan.Summary(), formatNext(inc), formatNext(full))
		p.status.set(rep.Outcome, failure(rep, err))
		notifySystemd(log, "STATUS="+line)
		d.metrics.DeletesWithheld(rep.Kind, rep.Withheld)
	}
	// The schedules' periods let alerts and dashboards compare runs with
	// them; the configuration checked that they parse.
	for kind, spec := range map[string]string{contactsync.RunIncremental: cfg.Schedule.Incremental, contactsync.RunFull: cfg.Schedule.Full} {
		if s, err := contactsync.ParseSchedule(spec); err == nil {
			d.metrics.SetSchedule(kind, s)
		}
	}

	// Changes committed from here on wake a run.
	select {
	case <-listening:
	case <-ctx.Done():
		<-listenDone
		return
	}
	p.setDaemon(dmn)
	defer p.setDaemon(nil)
	pruned := make(chan struct{})
	go func() { defer close(pruned); pruneLoop(ctx, d) }()
	log.Info("leading the project: running its schedules", zap.Bool("crm_notify", cfg.CRM.Notify),
		zap.String("webhook", cfg.Webhook.Listen),
		zap.String("incremental", cfg.Schedule.Incremental), zap.String("full", cfg.Schedule.Full))
	if err := dmn.Run(ctx, changes); err != nil {
		log.Error("the project's schedules stopped", zap.Error(err))
	}
	<-listenDone
	<-pruned
	log.Info("no longer leading the project")
}

// daemonHealth is /readyz for a process serving projects: ready while the
// database answers and no project's last run here failed; a process
// standing by for every project is ready too. Its answer says which
// projects this process leads.
func daemonHealth(store *crm.Store, projects []*projectRun) metrics.Health {
	return metrics.Health{
		Ping: store.Ping,
		LastRun: func() (string, bool) {
			outcome, any := "", false
			for _, p := range projects {
				if o, ok := p.status.last(); ok {
					if o == crm.RunFailed {
						return o, true
					}
					outcome, any = o, true
				}
			}
			return outcome, any
		},
		FailedBecause: func() string {
			var why []string
			for _, p := range projects {
				if o, _ := p.status.last(); o == crm.RunFailed {
					why = append(why, p.d.project+": "+p.status.failedBecause())
				}
			}
			return strings.Join(why, "; ")
		},
		Roles: func() string {
			var active, standby []string
			for _, p := range projects {
				if p.leading() {
					active = append(active, p.d.project)
				} else {
					standby = append(standby, p.d.project)
				}
			}
			return roles(active, standby)
		},
	}
}

func (p *projectRun) leading() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.active
}

// setLeading is told by the elector when this process starts or stops
// leading the project.
func (p *projectRun) setLeading(leading bool) {
	p.mu.Lock()
	p.active = leading
	p.mu.Unlock()
	p.d.metrics.SetActive(leading)
	if !leading {
		p.status.standBy()
	}
}

// roles says in a few words which projects a process leads.
func roles(active, standby []string) string {
	var parts []string
	if len(active) > 0 {
		parts = append(parts, "active for "+strings.Join(active, ", "))
	}
	if len(standby) > 0 {
		parts = append(parts, "standing by for "+strings.Join(standby, ", "))
	}
	return strings.Join(parts, "; ")
}
