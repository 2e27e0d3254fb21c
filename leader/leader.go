// Package leader elects, for each Sinch project of a deployment, the one
// syncd process that syncs it. PostgreSQL is the only coordinator: every
// process holds a member lock on a session of its own, and leads a project
// while that same session holds the project's leader lock, so a process
// that dies or loses its session lets go of everything at once and a
// standby takes over at its next check.
//
// Leading is not what keeps two processes from writing at once: that is the
// project lock each run takes (state.Lock), which outlives a leader that is
// still winding down. Leadership decides who tries, and so how fast a
// standby steps in and how the projects spread over the live processes.
package leader

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	stdsync "sync"
	"time"

	"go.uber.org/zap"

	"github.com/syncd/syncd/lease"
)

// DefaultInterval is how often an elector checks its session, counts the
// live processes and takes or hands over projects: a standby takes over a
// project at most this long after its leader's session ended.
const DefaultInterval = time.Second

// DefaultCheckTimeout bounds one check. A check that does not answer in time
// counts as a lost session; it can be generous, since overlapping leaders
// are kept apart by the project lock, not by this.
const DefaultCheckTimeout = 5 * time.Second

// ErrSessionLost reports that the elector's session ended or no longer holds
// its member lock, so its projects may already be led elsewhere.
var ErrSessionLost = errors.New("leader: election session lost")

// memberSpace is the first key of the two-key advisory locks that members
// hold (pg_locks: classid = memberSpace, objid = member id, objsubid = 2).
var memberSpace = lease.Space("syncd:members")

// Key is the advisory lock key of a project's leadership: FNV-1a (64-bit) of
// "syncd:leader:"+projectID, apart from the project lock's key so that a
// run by hand (syncd backfill) is not refused for as long as a daemon leads.
func Key(projectID string) lease.Key { return lease.Named("syncd:leader:" + projectID) }

// Options tune an Elector; the zero value is the defaults.
type Options struct {
	Interval     time.Duration // DefaultInterval if 0
	CheckTimeout time.Duration // DefaultCheckTimeout if 0
	// Busy reports a project that should not be handed over now (a run is
	// going); a leader over its share hands over only projects not busy.
	Busy func(projectID string) bool
	// OnChange is told each time this process starts or stops leading a
	// project.
	OnChange func(projectID string, leading bool)
	// OnCheck is told each time the elector comes round to a check, whether
	// the check then succeeds or not (a database outage is no wedge): a
	// watchdog's sign that the election loop is alive.
	OnCheck func()
}

// Elector takes part, for one process, in the elections of a set of
// projects.
type Elector struct {
	db       *sql.DB
	projects []string
	log      *zap.Logger
	opts     Options

	mu      stdsync.Mutex
	leading map[string]bool
	members int // live processes at the last check; 0 before one
}

// New returns an elector for projects (Sinch project ids) over db.
func New(db *sql.DB, projects []string, log *zap.Logger, opts Options) *Elector {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.CheckTimeout <= 0 {
		opts.CheckTimeout = DefaultCheckTimeout
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Elector{db: db, projects: projects, log: log, opts: opts, leading: map[string]bool{}}
}

// SetProjects replaces the projects this process takes part in the
// elections of (syncd run reloading its configuration): at the next check
// it lets go of a project no longer named, stopping its lead, and may take
// a new one within its share.
func (e *Elector) SetProjects(projects []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.projects = slices.Clone(projects)
}

func (e *Elector) wanted() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.projects
}

func (e *Elector) checked() {
	if e.opts.OnCheck != nil {
		e.opts.OnCheck()
	}
}

// Leading reports whether this process leads projectID now.
func (e *Elector) Leading(projectID string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leading[projectID]
}

// Members is how many processes took part at the last check; 0 while this
// one has no session.
func (e *Elector) Members() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.members
}

func (e *Elector) setLeading(projectID string, leading bool) {
	e.mu.Lock()
	if leading {
		e.leading[projectID] = true
	} else {
		delete(e.leading, projectID)
	}
	e.mu.Unlock()
	if e.opts.OnChange != nil {
		e.opts.OnChange(projectID, leading)
	}
}

// Run takes part in the elections until ctx ends. lead is called, in a
// goroutine of its own, for each project this process comes to lead, with a
// context that ends when it must stop leading: the session was lost, the
// project is handed over to another process, or ctx ended. Run returns once
// every lead has returned. A lost session is set up again after Interval.
func (e *Elector) Run(ctx context.Context, lead func(ctx context.Context, projectID string)) error {
	for {
		err := e.session(ctx, lead)
		if ctx.Err() != nil {
			return nil
		}
		e.log.Warn("election session lost: leading nothing until a new one is set up", zap.Error(err))
		e.checked()
		t := time.NewTimer(e.opts.Interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// term is one project led by this process.
type term struct {
	cancel    context.CancelFunc
	done      chan struct{}
	releasing bool // handed over: unlock once the lead has returned
}

func (t *term) ended() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

// session is one election session: it joins, then checks every Interval
// until the session is lost or ctx ends, and stops every lead it started
// before returning.
func (e *Elector) session(ctx context.Context, lead func(context.Context, string)) error {
	sess, err := lease.Open(ctx, e.db)
	if err != nil {
		return fmt.Errorf("leader: connect: %w", err)
	}
	// Ending the session is what frees its locks even if an unlock failed.
	defer sess.Close()
	member, err := join(ctx, sess)
	if err != nil {
		return err
	}
	e.log.Info("taking part in the elections", zap.Int32("member", member), zap.Int("projects", len(e.wanted())))

	terms := map[string]*term{}
	defer func() {
		for p, t := range terms {
			t.cancel()
			<-t.done
			e.setLeading(p, false)
		}
		e.mu.Lock()
		e.members = 0
		e.mu.Unlock()
	}()

	tick := time.NewTicker(e.opts.Interval)
	defer tick.Stop()
	for first := true; ; first = false {
		e.checked()
		held, members, err := e.survey(ctx, sess, member)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		e.mu.Lock()
		e.members = members
		e.mu.Unlock()
		if err := e.settle(ctx, sess, terms, held); err != nil {
			return err
		}
		// The first check only joins: processes started together all count
		// each other before any takes its share.
		if !first {
			if err := e.balance(ctx, sess, terms, members, lead); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// settle ends the terms whose lead has returned (unlocking those handed
// over) and stops the leads whose leader lock is gone from the session.
func (e *Elector) settle(ctx context.Context, sess *lease.Session, terms map[string]*term, held map[lease.Key]bool) error {
	for p, t := range terms {
		switch {
		case !held[Key(p)]:
			e.log.Warn("leader lock of a project gone from the session: stopping", zap.String("project", p))
			t.cancel()
			<-t.done
		case !t.ended():
			continue
		case !t.releasing:
			e.log.Error("the sync of a project stopped on its own: handing it over", zap.String("project", p))
			fallthrough
		default:
			if err := unlock(ctx, sess, Key(p)); err != nil {
				return err
			}
			e.log.Info("handed a project over", zap.String("project", p))
		}
		delete(terms, p)
		e.setLeading(p, false)
	}
	return nil
}

// balance takes free projects up to this process's share, the live
// processes' fair share (rounded up) of all projects, and hands over
// projects above it, so that projects spread over the live processes.
func (e *Elector) balance(ctx context.Context, sess *lease.Session, terms map[string]*term, members int, lead func(context.Context, string)) error {
	if members < 1 {
		members = 1
	}
	projects := e.wanted()
	share := (len(projects) + members - 1) / members
	active := 0
	for p, t := range terms {
		if !t.releasing && !slices.Contains(projects, p) {
			// No longer in the configuration: let it go now, run or not.
			e.log.Info("a project left the configuration: letting it go", zap.String("project", p))
			t.releasing = true
			t.cancel()
		}
		if !t.releasing {
			active++
		}
	}
	for p, t := range terms {
		if active <= share {
			break
		}
		if t.releasing || (e.opts.Busy != nil && e.opts.Busy(p)) {
			continue
		}
		e.log.Info("more projects here than this process's share: handing one over",
			zap.String("project", p), zap.Int("share", share), zap.Int("members", members))
		t.releasing = true
		t.cancel()
		active--
	}
	for _, p := range projects {
		if active >= share {
			break
		}
		if terms[p] != nil {
			continue
		}
		ok, err := tryLock(ctx, sess, Key(p))
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		e.log.Info("leading a project", zap.String("project", p), zap.Int("share", share), zap.Int("members", members))
		lctx, cancel := context.WithCancel(ctx)
		t := &term{cancel: cancel, done: make(chan struct{})}
		terms[p] = t
		active++
		e.setLeading(p, true)
		go func() {
			defer close(t.done)
			lead(lctx, p)
		}()
	}
	return nil
}

// join takes a member lock under an id of its own.
func join(ctx context.Context, sess *lease.Session) (int32, error) {
	for range 8 {
		id := rand.Int32N(1<<31-1) + 1
		ok, err := sess.TryLock(ctx, lease.Pair(memberSpace, id))
		if err != nil {
			return 0, fmt.Errorf("leader: join: %w", err)
		}
		if ok {
			return id, nil
		}
	}
	return 0, errors.New("leader: join: no free member id")
}

// survey returns the leader locks this session holds and how many members
// there are, failing with ErrSessionLost when the session no longer holds
// its member lock or does not answer within CheckTimeout: whoever holds a
// lock re-checks it, and steps down once it is gone.
func (e *Elector) survey(ctx context.Context, sess *lease.Session, member int32) (held map[lease.Key]bool, members int, err error) {
	cctx, cancel := context.WithTimeout(ctx, e.opts.CheckTimeout)
	defer cancel()
	var sessions []lease.Holding
	err = sess.Do(cctx, func(c *sql.Conn) error {
		var err error
		sessions, err = lease.InSpace(cctx, c, memberSpace)
		return err
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		return nil, 0, fmt.Errorf("%w: %w", ErrSessionLost, err)
	}
	held = map[lease.Key]bool{}
	joined := false
	for _, s := range sessions {
		if s.PID != sess.PID() {
			continue
		}
		joined = s.Holds(lease.Pair(memberSpace, member))
		for _, k := range s.Keys {
			held[k] = true
		}
	}
	if !joined {
		return nil, 0, fmt.Errorf("%w: its member lock is gone", ErrSessionLost)
	}
	return held, len(sessions), nil
}

func tryLock(ctx context.Context, sess *lease.Session, key lease.Key) (bool, error) {
	ok, err := sess.TryLock(ctx, key)
	if err != nil {
		return false, fmt.Errorf("%w: take a leader lock: %w", ErrSessionLost, err)
	}
	return ok, nil
}

func unlock(ctx context.Context, sess *lease.Session, key lease.Key) error {
	if _, err := sess.Unlock(ctx, key); err != nil {
		return fmt.Errorf("%w: hand over a leader lock: %w", ErrSessionLost, err)
	}
	return nil
}
