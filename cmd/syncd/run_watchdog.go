package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"go.uber.org/zap"
)

// Bounds of the watchdog's signs of life (see stalled).
const (
	// electorSilence: the elector comes round every second, and a check
	// that does not answer is given up after 5 s; a connection being set
	// up again may take the database's TCP timeouts (about 11 s).
	electorSilence = time.Minute
	// schedulerSilence: the scheduler beats every 10 s.
	schedulerSilence = time.Minute
)

// runSilence is how long a run holding the project lock may go without a
// sign of progress (a Sinch call answered, CRM rows read, an operation
// applied) before it counts as stuck: three times the longest one Sinch
// call may take with its retries. A run waiting for the lock is not
// stuck, nor is a daemon between runs.
func runSilence(cfg Config) time.Duration {
	return 3 * (cfg.Sinch.MaxRetryTime + cfg.Sinch.Timeout)
}

// stalled says what of the daemon makes no progress, "" when every loop
// that matters does: the election loop, each led project's scheduler, and
// each run going on.
func (s *daemonState) stalled() string {
	now := time.Now()
	var why []string
	if since := now.Sub(time.Unix(0, s.lastCheck.Load())); since > electorSilence {
		why = append(why, fmt.Sprintf("the election loop has not come round for %s", since.Round(time.Second)))
	}
	for _, p := range s.running() {
		p.mu.Lock()
		dmn, beat, running, progress := p.dmn, p.beat, p.running, p.progress
		p.mu.Unlock()
		if dmn == nil {
			continue // not led here
		}
		if since := now.Sub(beat); since > schedulerSilence {
			why = append(why, fmt.Sprintf("project %s: the scheduler has not beaten for %s", p.d.project, since.Round(time.Second)))
		}
		if last := time.Unix(0, p.d.lastCall.Load()); last.After(progress) {
			progress = last
		}
		if since := now.Sub(progress); running && dmn.Busy() && since > runSilence(p.d.cfg) {
			why = append(why, fmt.Sprintf("project %s: the run going on has made no progress for %s", p.d.project, since.Round(time.Second)))
		}
	}
	return strings.Join(why, "; ")
}

// startWatchdog pings systemd's watchdog at half its interval when the
// unit sets WatchdogSec, but only while stalled finds nothing: a wedged
// scheduler or a stuck run stops the pings, and systemd then kills syncd
// with SIGABRT (every goroutine's stack goes to the journal) and starts it
// again.
func startWatchdog(log *zap.Logger, stalled func() string) (stop func()) {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(interval / 2)
		defer t.Stop()
		withheld := false
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			why := stalled()
			switch {
			case why == "":
				if withheld {
					log.Info("progress again: pinging systemd's watchdog again")
					withheld = false
				}
				notifySystemd(log, daemon.SdNotifyWatchdog)
			case !withheld:
				log.Error("no progress: not pinging systemd's watchdog, which restarts syncd", zap.String("stalled", why),
					zap.Duration("watchdog", interval))
				withheld = true
			}
		}
	}()
	return func() { close(done); <-stopped }
}
