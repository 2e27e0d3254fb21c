package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"gorm.io/gorm"
)

// Run is one sync run of a project, as recorded in syncd.runs.
type Run struct {
	ID         int64
	ProjectID  string
	Kind       RunKind
	Outcome    Outcome
	Error      string
	Host       string
	PID        int
	StartedAt  time.Time
	FinishedAt *time.Time
	Counts     map[string]int
	// PIDNamespace qualifies PID on its host (Linux: /proc/self/ns/pid);
	// empty where unknown.
	PIDNamespace string
	// LockPID and LockBackendStart name the session that held the project
	// lock for the run (see Lock.StartRun); zero for a run started without one.
	LockPID          int
	LockBackendStart time.Time
}

// ErrRunFinished is matched by FinishRun's error when the run is no longer
// running: its own process, or a successor's recovery, recorded its end.
var ErrRunFinished = errors.New("state: run already finished")

// StartRun records the start of a run by this process (host and pid are
// recorded so an operator can tell whose run a stale "running" row was). It
// names no lock session: runs under the project lock start with
// Lock.StartRun.
func (s *Store) StartRun(ctx context.Context, projectID string, kind RunKind) (Run, error) {
	host, _ := os.Hostname()
	row := runRow{ProjectID: projectID, Kind: kind, Outcome: OutcomeRunning, Counts: runCounts{},
		Host: nullIfZero(host), PID: nullIfZero(os.Getpid()), PIDNamespace: nullIfZero(pidNamespace())}
	if err := s.gorm.WithContext(ctx).Create(&row).Error; err != nil {
		return Run{}, fmt.Errorf("state: start run: %w", err)
	}
	return row.run(), nil
}

// pidNamespace names this process's PID namespace, so that a pid recorded
// on a host can be told apart from the same pid in another container of
// that host; empty where there is none to read.
func pidNamespace() string {
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	return ns
}

// ProcessGone reports whether the run's process is known to have exited: it
// ran on this host, in this PID namespace, is not this process, and no
// process has its pid now. A process that is gone has no call in flight.
// False whenever that cannot be told, including when the pid was reused.
func (r Run) ProcessGone() bool {
	host, err := os.Hostname()
	if err != nil || r.Host == "" || r.Host != host || r.PIDNamespace == "" || r.PIDNamespace != pidNamespace() ||
		r.PID <= 0 || r.PID == os.Getpid() {
		return false
	}
	p, err := os.FindProcess(r.PID)
	if err != nil {
		return false
	}
	defer p.Release()
	return errors.Is(p.Signal(syscall.Signal(0)), os.ErrProcessDone)
}

// FinishRun records how a run ended. A run finishes once: finishing it again
// fails with ErrRunFinished, so that neither the run's own process (which
// lost its lock, say) nor a successor's recovery overwrites what the other
// recorded first.
func (s *Store) FinishRun(ctx context.Context, id int64, outcome Outcome, counts map[string]int, errMsg string) error {
	if outcome == "" || outcome == OutcomeRunning {
		return fmt.Errorf("state: finish run %d: outcome %q does not end a run", id, outcome)
	}
	res := s.gorm.WithContext(ctx).Model(&runRow{}).Where("id = ? AND outcome = ?", id, OutcomeRunning).
		Updates(map[string]any{"outcome": outcome, "counts": runCounts(counts), "error": nullIfZero(errMsg),
			"finished_at": gorm.Expr("now()")})
	if res.Error != nil {
		return fmt.Errorf("state: finish run %d: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("state: finish run %d: no such run, or %w", id, ErrRunFinished)
	}
	return nil
}

// LastRuns returns the project's n most recent runs, newest first; none for
// n <= 0.
func (s *Store) LastRuns(ctx context.Context, projectID string, n int) ([]Run, error) {
	if n <= 0 {
		return nil, nil
	}
	return s.findRuns(s.gorm.WithContext(ctx).Where("project_id = ?", projectID).Order("id DESC").Limit(n))
}

// InterruptedRuns returns the project's runs still marked running, oldest
// first. Only a caller holding the project lock can take them for dead, and
// even then not while the session that held the lock for them lives (see
// SessionAlive) or their process may still have calls in flight.
func (s *Store) InterruptedRuns(ctx context.Context, projectID string) ([]Run, error) {
	return s.findRuns(s.gorm.WithContext(ctx).Where("project_id = ? AND outcome = ?", projectID, OutcomeRunning).Order("id"))
}

func (s *Store) findRuns(q *gorm.DB) ([]Run, error) {
	var rows []runRow
	if err := q.Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("state: read runs: %w", err)
	}
	runs := make([]Run, len(rows))
	for i, r := range rows {
		runs[i] = r.run()
	}
	return runs, nil
}
