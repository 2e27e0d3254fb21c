package main

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sys/unix"
)

// Keys that syncd run applies on SIGHUP; every other change waits for a
// restart. The process's keys:
var liveProcessKeys = []string{"log.level", "shutdown_timeout", "journal.retention"}

// And a project's (a project added or removed is applied too):
var liveProjectKeys = []string{"schedule.incremental", "schedule.full", "sinch.rate_limit_rps"}

// reload re-reads the configuration (the file and the environment the
// process started with) and applies what can change while syncd runs:
// log.level, shutdown_timeout, journal.retention, each project's schedules
// and sinch.rate_limit_rps, and projects added or removed. Every other
// change is refused, in one log line that names its keys, and keeps its
// running value until a restart. A configuration with problems is refused
// whole.
func (s *daemonState) reload() {
	log := s.log
	// RELOADING=1 ... READY=1 is how a Type=notify service tells systemd
	// that `systemctl reload` is done.
	notifySystemd(log, "RELOADING=1", monotonicUsec(), "STATUS=reloading the configuration")
	defer notifySystemd(log, daemon.SdNotifyReady, "STATUS=reloaded the configuration")
	s.e.findConfig()
	cfg, err := loadConfig(s.e.configPath, s.e.configExplicit, s.e.getenv)
	if err == nil {
		_, err = s.e.projects(cfg)
	}
	if err != nil {
		log.Error("reload refused: the configuration has problems (syncd config check lists them); the running one stays", zap.Error(err))
		return
	}
	for _, w := range s.e.envWarnings(cfg) {
		log.Warn(w)
	}
	serve, _ := s.e.projects(cfg)

	s.mu.Lock()
	var applied, refused []string
	old := s.cfg
	for _, k := range changedKeys(processSections(old), processSections(cfg), "") {
		if !slices.Contains(liveProcessKeys, k) {
			refused = append(refused, k)
			continue
		}
		applied = append(applied, k)
		switch k {
		case "log.level":
			level, _ := zapcore.ParseLevel(cfg.Log.Level) // validated
			s.level.SetLevel(level)
			s.cfg.Log.Level = cfg.Log.Level
		case "shutdown_timeout":
			s.cfg.ShutdownTimeout = cfg.ShutdownTimeout
		case "journal.retention":
			s.cfg.Journal = cfg.Journal
		}
	}

	byName := map[string]*projectRun{}
	for _, p := range s.serving {
		byName[p.d.project] = p
	}
	var serving []*projectRun
	var added []*projectRun
	for _, np := range serve {
		p, ok := byName[np.Name]
		if !ok {
			path := "projects[" + np.Name + "]"
			if np.Config.Webhook.Listen != "" {
				refused = append(refused, path+" (a new project with webhook.listen)")
				continue
			}
			d, err := projectDeps(np, log, s.store, s.registry)
			if err != nil {
				log.Error("reload: cannot add a project", zap.String("project", np.Name), zap.Error(err))
				continue
			}
			p = newProjectRun(d)
			added = append(added, p)
			applied = append(applied, path+" added")
			serving = append(serving, p)
			continue
		}
		delete(byName, np.Name)
		serving = append(serving, p)
		prefix := ""
		if len(cfg.projects) > 0 || len(old.projects) > 0 {
			prefix = "projects[" + np.Name + "]."
		}
		now := p.config()
		for _, k := range changedKeys(projectSectionsOf(now), projectSectionsOf(np.Config), "") {
			if !slices.Contains(liveProjectKeys, k) {
				refused = append(refused, prefix+k)
				continue
			}
			applied = append(applied, prefix+k)
		}
		if sc := np.Config.Schedule; sc != now.Schedule {
			if err := p.setSchedule(sc); err != nil {
				log.Error("reload: cannot apply the schedules", zap.String("project", np.Name), zap.Error(err))
			}
		}
		if rps := np.Config.Sinch.RateLimitRPS; rps != now.Sinch.RateLimitRPS {
			p.setRateLimit(rps)
		}
	}
	for name, p := range byName {
		applied = append(applied, "projects["+name+"] removed")
		if p.d.cfg.Webhook.Listen != "" {
			log.Warn("a removed project's webhook callbacks are still taken and stored until syncd restarts", zap.String("project", name))
		}
	}
	s.serving = serving
	for _, p := range added {
		s.byID[p.d.cfg.Sinch.ProjectID] = p
	}
	s.mu.Unlock()

	// The elector lets a removed project go (its lead stops) and may take
	// an added one at its next check.
	s.elector.SetProjects(s.ids())
	slices.Sort(applied)
	slices.Sort(refused)
	if len(refused) > 0 {
		log.Warn("reload: these changes take a restart (systemctl restart syncd); their running values stay",
			zap.Strings("refused", refused))
	}
	log.Info("reloaded the configuration", zap.String("config", s.e.configSource()), zap.Strings("applied", applied))
}

// processSections is the configuration without a project's sections,
// which projectSections holds.
func processSections(c Config) map[string]string {
	out := map[string]string{}
	flatten(reflect.ValueOf(c), "", func(key string) bool {
		top, _, _ := strings.Cut(key, ".")
		return !slices.Contains(projectSections, top)
	}, out)
	return out
}

func projectSectionsOf(c Config) map[string]string {
	out := map[string]string{}
	flatten(reflect.ValueOf(c), "", func(key string) bool {
		top, _, _ := strings.Cut(key, ".")
		return slices.Contains(projectSections, top)
	}, out)
	return out
}

// flatten writes the keys of v (by their yaml names) that keep accepts,
// with their values, to out.
func flatten(v reflect.Value, prefix string, keep func(string) bool, out map[string]string) {
	t := v.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		key := prefix + name
		if f := v.Field(i); f.Kind() == reflect.Struct && f.Type() != reflect.TypeOf(time.Duration(0)) {
			flatten(f, key+".", keep, out)
		} else if keep(key) {
			out[key] = fmt.Sprint(f.Interface())
		}
	}
}

// changedKeys lists the keys whose values differ between a and b, sorted.
func changedKeys(a, b map[string]string, prefix string) []string {
	var out []string
	for k, v := range a {
		if b[k] != v {
			out = append(out, prefix+k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, prefix+k)
		}
	}
	slices.Sort(out)
	return out
}

// monotonicUsec is the MONOTONIC_USEC= field that newer systemd wants with
// RELOADING=1: CLOCK_MONOTONIC, in microseconds.
func monotonicUsec() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return ""
	}
	return fmt.Sprintf("MONOTONIC_USEC=%d", ts.Nano()/1000)
}
