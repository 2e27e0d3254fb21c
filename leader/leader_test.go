package leader_test

import (
	"context"
	"database/sql"
	"fmt"
	stdsync "sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/syncd/syncd/leader"
	"github.com/syncd/syncd/state/statetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const every = 50 * time.Millisecond

// tally counts, per project, the leads running now across every elector of
// a test, and remembers whether two ever ran at once.
type tally struct {
	mu      stdsync.Mutex
	running map[string]map[string]bool // project -> elector name
	overlap string
	starts  map[string]int // elector name -> leads started
	ends    map[string]int // elector name -> leads ended
}

func newTally() *tally {
	return &tally{running: map[string]map[string]bool{}, starts: map[string]int{}, ends: map[string]int{}}
}

func (ta *tally) lead(name string) func(ctx context.Context, project string) {
	return func(ctx context.Context, project string) {
		ta.mu.Lock()
		if ta.running[project] == nil {
			ta.running[project] = map[string]bool{}
		}
		for other := range ta.running[project] {
			if ta.overlap == "" {
				ta.overlap = fmt.Sprintf("%s led by %s and %s at once", project, other, name)
			}
		}
		ta.running[project][name] = true
		ta.starts[name]++
		ta.mu.Unlock()
		<-ctx.Done()
		ta.mu.Lock()
		delete(ta.running[project], name)
		ta.ends[name]++
		ta.mu.Unlock()
	}
}

// leads returns how many projects each elector name leads now.
func (ta *tally) leads() map[string]int {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	out := map[string]int{}
	for _, names := range ta.running {
		for n := range names {
			out[n]++
		}
	}
	return out
}

func (ta *tally) ended(name string) int {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	return ta.ends[name]
}

func (ta *tally) overlapped() string {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	return ta.overlap
}

// start runs an elector until the test ends or stop is called.
func start(t *testing.T, db *sql.DB, name string, projects []string, ta *tally, opts leader.Options) (e *leader.Elector, stop func()) {
	t.Helper()
	if opts.Interval == 0 {
		opts.Interval = every
	}
	e = leader.New(db, projects, zaptest.NewLogger(t).Named(name), opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := e.Run(ctx, ta.lead(name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}()
	var once stdsync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return e, stop
}

// eventually polls cond until it holds, failing after a deadline generous
// enough for a loaded machine.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not so after 30s: %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling, not waiting for a duration
	}
}

func sqlDB(t *testing.T) *sql.DB {
	t.Helper()
	return statetest.NewStore(t).SQL()
}

func TestProjectsSpreadOverProcesses(t *testing.T) {
	db := sqlDB(t)
	projects := []string{"p1", "p2", "p3"}
	ta := newTally()
	a, _ := start(t, db, "a", projects, ta, leader.Options{})
	eventually(t, "a alone leads all three", func() bool { return ta.leads()["a"] == 3 })
	b, _ := start(t, db, "b", projects, ta, leader.Options{})
	eventually(t, "a leads two and b one", func() bool {
		l := ta.leads()
		return l["a"] == 2 && l["b"] == 1
	})
	if o := ta.overlapped(); o != "" {
		t.Fatal(o)
	}
	for _, p := range projects {
		if a.Leading(p) == b.Leading(p) {
			t.Errorf("%s: a leading %v, b leading %v", p, a.Leading(p), b.Leading(p))
		}
	}
	ms, err := leader.Members(context.Background(), db, projects)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || len(ms[0].Leads)+len(ms[1].Leads) != 3 {
		t.Fatalf("members: %+v", ms)
	}
}

func TestStandbyTakesOverWhenTheLeaderStops(t *testing.T) {
	db := sqlDB(t)
	projects := []string{"p1", "p2"}
	ta := newTally()
	_, stopA := start(t, db, "a", projects, ta, leader.Options{})
	eventually(t, "a leads both", func() bool { return ta.leads()["a"] == 2 })
	start(t, db, "b", projects, ta, leader.Options{})
	eventually(t, "one each", func() bool { l := ta.leads(); return l["a"] == 1 && l["b"] == 1 })
	stopA()
	eventually(t, "b leads both", func() bool { return ta.leads()["b"] == 2 })
	if o := ta.overlapped(); o != "" {
		t.Fatal(o)
	}
}

func TestBusyProjectsAreNotHandedOver(t *testing.T) {
	db := sqlDB(t)
	projects := []string{"p1", "p2"}
	ta := newTally()
	var busy stdsync.Map
	busy.Store("p1", true)
	busy.Store("p2", true)
	// Busy is asked only by a leader over its share, once per project it
	// might hand over: asked after b has joined, a has weighed both.
	var asked atomic.Int32
	a, _ := start(t, db, "a", projects, ta, leader.Options{Busy: func(p string) bool {
		asked.Add(1)
		v, _ := busy.Load(p)
		return v == true
	}})
	eventually(t, "a leads both", func() bool { return ta.leads()["a"] == 2 })
	b, _ := start(t, db, "b", projects, ta, leader.Options{})
	eventually(t, "a has weighed handing over both, twice", func() bool { return asked.Load() >= 4 })
	if l := ta.leads(); l["a"] != 2 {
		t.Fatalf("a busy leader handed a project over: %v", l)
	}
	busy.Store("p2", false)
	eventually(t, "p2 handed over once idle", func() bool { return b.Leading("p2") && a.Leading("p1") })
	if o := ta.overlapped(); o != "" {
		t.Fatal(o)
	}
}

func TestStandbyTakesOverWhenTheLeaderLosesItsSession(t *testing.T) {
	db := sqlDB(t)
	projects := []string{"p1"}
	ta := newTally()
	a, _ := start(t, db, "a", projects, ta, leader.Options{})
	eventually(t, "a leads", func() bool { return a.Leading("p1") })
	b, _ := start(t, db, "b", projects, ta, leader.Options{})
	eventually(t, "b standing by", func() bool { return b.Members() == 2 })

	ms, err := leader.Members(context.Background(), db, projects)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	for _, m := range ms {
		if len(m.Leads) == 1 {
			pid = m.PID
		}
	}
	if pid == 0 {
		t.Fatalf("no member leads p1: %+v", ms)
	}
	if _, err := db.Exec(`SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a has stepped down", func() bool { return ta.ended("a") == 1 })
	// Whichever takes p1 next (b at its next check, most likely; a if it
	// joined again first), one process leads it, and both take part.
	eventually(t, "one leader, both members", func() bool {
		return a.Leading("p1") != b.Leading("p1") && a.Members() == 2 && b.Members() == 2
	})
}

// SetProjects lets go of a project no longer named, even mid-run, leaves
// it free for another process, and takes a new one; OnCheck tells of every
// check.
func TestSetProjects(t *testing.T) {
	db := sqlDB(t)
	ta := newTally()
	var checks atomic.Int32
	a, _ := start(t, db, "a", []string{"p1", "p2"}, ta, leader.Options{
		Busy:    func(string) bool { return true },
		OnCheck: func() { checks.Add(1) },
	})
	eventually(t, "a leads both", func() bool { return ta.leads()["a"] == 2 })
	a.SetProjects([]string{"p1", "p3"})
	eventually(t, "a lets p2 go and takes p3", func() bool { return a.Leading("p3") && !a.Leading("p2") && a.Leading("p1") })
	if n := ta.ended("a"); n != 1 {
		t.Errorf("%d leads ended, want p2's", n)
	}
	b, _ := start(t, db, "b", []string{"p2"}, ta, leader.Options{})
	eventually(t, "b takes the project a let go", func() bool { return b.Leading("p2") })
	if o := ta.overlapped(); o != "" {
		t.Fatal(o)
	}
	if checks.Load() < 3 {
		t.Errorf("OnCheck told of %d checks", checks.Load())
	}
}
