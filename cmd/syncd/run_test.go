package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	stdsync "sync"
	"testing"
	"time"

	"github.com/syncd/syncd/sinch/sinchtest"
)

// daemonHandle is a `syncd run` started in process.
type daemonHandle struct {
	addr    string
	webhook string // webhook.listen's address, when set
	cancel  context.CancelFunc
	done    chan int
	stderr  *syncBuffer
}

// syncBuffer is a bytes.Buffer safe for the daemon's concurrent writes.
type syncBuffer struct {
	mu stdsync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startDaemon runs `syncd run` until the test ends (or stop is called) and
// waits until it serves.
func (h *harness) startDaemon() *daemonHandle {
	h.t.Helper()
	return h.startDaemonWith(nil)
}

// startDaemonWith is startDaemon with hangups standing in for SIGHUP.
func (h *harness) startDaemonWith(hangups <-chan os.Signal) *daemonHandle {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	d := &daemonHandle{cancel: cancel, done: make(chan int, 1), stderr: &syncBuffer{}}
	e := &env{stdout: io.Discard, stderr: d.stderr, getenv: func(k string) string { return h.env[k] },
		ready: func(addr string) { ready <- addr }, webhookReady: func(addr string) { d.webhook = addr }, hangups: hangups}
	go func() {
		root := e.rootCommand()
		root.SetArgs([]string{"--config", h.config, "run"})
		root.SetOut(io.Discard)
		root.SetErr(d.stderr)
		if err := root.ExecuteContext(ctx); err != nil {
			fmt.Fprintf(d.stderr, "syncd: %v\n", err)
			d.done <- exitError
			return
		}
		d.done <- exitOK
	}()
	select {
	case d.addr = <-ready:
	case code := <-d.done:
		h.t.Fatalf("syncd run exited %d before it was ready:\n%s", code, d.stderr)
	case <-time.After(30 * time.Second):
		h.t.Fatalf("syncd run not ready after 30s:\n%s", d.stderr)
	}
	h.t.Cleanup(func() { d.stop(h.t) })
	return d
}

// stop sends the equivalent of SIGTERM and returns the exit status.
func (d *daemonHandle) stop(t *testing.T) int {
	t.Helper()
	d.cancel()
	select {
	case code := <-d.done:
		d.done <- code // later calls see it too
		return code
	case <-time.After(30 * time.Second):
		t.Fatalf("syncd run did not stop within 30s:\n%s", d.stderr)
		return -1
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	eventuallyWithin(t, 20*time.Second, what, cond)
}

// eventuallyWithin is eventually with a deadline of its own, for what takes
// long on a loaded machine.
func eventuallyWithin(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(within)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting until %s", what)
		case <-tick.C:
		}
	}
}

func daemonConfig(extra string) string {
	return "sinch:\n  rate_limit_rps: 1000\nhttp:\n  listen: 127.0.0.1:0\nshutdown_timeout: 10s\n" + extra
}

func TestRunSyncsEditsOnTheNextTick(t *testing.T) {
	h := newHarness(t)
	h.setConfig(daemonConfig("schedule:\n  incremental: '@every 1s'\n  full: '@every 1h'\n"))
	h.migrate()
	rows := crmRows(30)
	h.load(rows)
	d := h.startDaemon()

	eventually(t, "the first run mirrors the CRM", func() bool { return len(h.emu.Contacts()) == 30 })
	rows[7].DisplayName = str("Edited On Tick")
	h.load(rows[7:8])
	eventually(t, "the edit reaches Sinch", func() bool {
		c := h.byExternalID()["crm-0008"]
		return len(c) == 1 && c[0].DisplayName == "Edited On Tick"
	})

	// An incremental tick with no CRM change makes no Sinch call.
	runs := func() int {
		var n int64
		h.store.DB().Raw("SELECT count(*) FROM syncd.runs WHERE kind = 'incremental' AND outcome = 'succeeded'").Scan(&n)
		return int(n)
	}
	before := runs()
	eventually(t, "two more quiet ticks", func() bool { return runs() >= before+2 })
	calls := h.emu.CallCounts()
	eventually(t, "one more quiet tick", func() bool { return runs() >= before+3 })
	if after := h.emu.CallCounts(); fmt.Sprint(after) != fmt.Sprint(calls) {
		t.Errorf("a tick without CRM changes called Sinch: %v → %v", calls, after)
	}

	metricsText := httpGet(t, "http://"+d.addr+"/metrics")
	for _, want := range []string{
		`syncd_runs_total{kind="full",outcome="succeeded",project="default"} 1`,
		`syncd_operations_total{kind="create",project="default",status="done"} 30`,
		`syncd_sinch_calls_total{code="200",operation="create",project="default"} 30`,
		`syncd_last_success_timestamp_seconds{kind="incremental",project="default"}`,
		`syncd_lock_wait_seconds_count{project="default"}`,
	} {
		if !strings.Contains(metricsText, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code := d.stop(t); code != 0 {
		t.Errorf("syncd run exited %d on SIGTERM, want 0", code)
	}
}

func TestRunNotifyReachesSinchWithoutATick(t *testing.T) {
	h := newHarness(t)
	h.setConfig(daemonConfig("crm:\n  notify: true\nschedule:\n  incremental: '@every 1h'\n  full: '@every 1h'\n"))
	h.migrate()
	rows := crmRows(5)
	h.load(rows)
	h.startDaemon()
	eventually(t, "the first run mirrors the CRM", func() bool { return len(h.emu.Contacts()) == 5 })

	rows[2].Email = str("notified@example.com")
	h.load(rows[2:3])
	eventually(t, "the notified edit reaches Sinch", func() bool {
		c := h.byExternalID()["crm-0003"]
		return len(c) == 1 && c[0].Email == "notified@example.com"
	})

	// A burst of updates makes a handful of runs, not one per row.
	var runsBefore int64
	h.store.DB().Raw("SELECT count(*) FROM syncd.runs").Scan(&runsBefore)
	burst := crmRows(300)
	for i := range burst {
		burst[i].DisplayName = str(fmt.Sprintf("Burst %d", i))
	}
	for i := 0; i < len(burst); i += 10 {
		h.load(burst[i : i+10])
	}
	eventually(t, "the burst reaches Sinch", func() bool {
		c := h.byExternalID()["crm-0300"]
		return len(c) == 1 && c[0].DisplayName == "Burst 299"
	})
	var runsAfter int64
	h.store.DB().Raw("SELECT count(*) FROM syncd.runs").Scan(&runsAfter)
	if n := runsAfter - runsBefore; n > 10 {
		t.Errorf("30 commits made %d runs, want a handful", n)
	}
}

func TestRunTwoDaemonsNeverOverlap(t *testing.T) {
	h := newHarness(t)
	h.setConfig(daemonConfig("schedule:\n  incremental: '@every 1s'\n  full: '@every 2s'\n"))
	h.migrate()
	h.load(crmRows(40))
	h.startDaemon()
	h.startDaemon()
	var finished int64
	eventually(t, "eight finished runs", func() bool {
		h.store.DB().Raw("SELECT count(*) FROM syncd.runs WHERE finished_at IS NOT NULL").Scan(&finished)
		return finished >= 8
	})
	// Partial runs go one at a time, and full runs one at a time; a full
	// run goes on beside partial ones, taking the project lock only to
	// write (which the lock tests and the model test check).
	var overlaps int64
	if err := h.store.DB().Raw(`SELECT count(*) FROM syncd.runs a JOIN syncd.runs b ON a.id < b.id
		WHERE a.started_at < COALESCE(b.finished_at, now()) AND b.started_at < COALESCE(a.finished_at, now())
			AND (a.kind = 'full') = (b.kind = 'full')`).Scan(&overlaps).Error; err != nil {
		t.Fatal(err)
	}
	if overlaps != 0 {
		t.Errorf("%d pairs of runs of one lane overlapped in time", overlaps)
	}
	if n := len(h.emu.Contacts()); n != 40 {
		t.Errorf("%d contacts, want 40", n)
	}
}

func TestRunStopsCleanlyMidRunAndRestartFinishes(t *testing.T) {
	h := newHarness(t)
	h.setConfig("sinch:\n  rate_limit_rps: 200\n  max_concurrency: 2\nhttp:\n  listen: 127.0.0.1:0\nschedule:\n  incremental: '@every 1h'\n  full: '@every 1h'\n")
	h.migrate()
	rows := crmRows(300)
	h.load(rows)
	d := h.startDaemon()
	eventually(t, "the first run is under way", func() bool { return h.emu.Calls("create") >= 20 })
	if code := d.stop(t); code != 0 {
		t.Fatalf("SIGTERM mid-run exited %d, want 0:\n%s", code, d.stderr)
	}
	if n := len(h.emu.Contacts()); n >= 300 {
		t.Fatalf("the run finished before it was stopped (%d contacts); make it slower", n)
	}
	var outcome string
	h.store.DB().Raw("SELECT outcome FROM syncd.runs ORDER BY id DESC LIMIT 1").Scan(&outcome)
	if outcome != "interrupted" {
		t.Errorf("the stopped run's outcome is %q, want interrupted", outcome)
	}

	h.startDaemon()
	eventually(t, "the restarted daemon finishes the work", func() bool { return len(h.emu.Contacts()) == 300 })
	for ext, cs := range h.byExternalID() {
		if len(cs) != 1 {
			t.Errorf("%s has %d contacts", ext, len(cs))
		}
	}
}

func TestReadyzFollowsTheDatabase(t *testing.T) {
	h := newHarness(t)
	proxy := newTCPProxy(t, h.env["SYNCD_DATABASE_URL"])
	h.env["SYNCD_DATABASE_URL"] = proxy.url
	h.setConfig(daemonConfig("schedule:\n  incremental: '@every 1h'\n  full: '@every 1h'\n"))
	h.migrate()
	d := h.startDaemon()
	eventually(t, "/readyz answers 200", func() bool { return httpStatus(t, "http://"+d.addr+"/readyz") == http.StatusOK })
	proxy.close()
	eventually(t, "/readyz answers 503 with the database gone", func() bool {
		return httpStatus(t, "http://"+d.addr+"/readyz") == http.StatusServiceUnavailable
	})
	if code := httpStatus(t, "http://"+d.addr+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d with the database gone, want 200", code)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// tcpProxy forwards a loopback port to PostgreSQL until closed, so a test
// can make the database unreachable without stopping the shared server.
type tcpProxy struct {
	url   string
	ln    net.Listener
	mu    stdsync.Mutex
	conns []net.Conn
	wg    stdsync.WaitGroup
}

func newTCPProxy(t *testing.T, dbURL string) *tcpProxy {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	target := u.Host
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, url: strings.Replace(dbURL, "@"+target, "@"+ln.Addr().String(), 1)}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); io.Copy(up, c); up.Close() }()
			go func() { defer p.wg.Done(); io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(p.close)
	return p
}

func (p *tcpProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// After a failed run /readyz says what failed, not only that something did.
func TestReadyzSaysWhyTheLastRunFailed(t *testing.T) {
	h := newHarness(t)
	h.setConfig(daemonConfig("sinch:\n  rate_limit_rps: 1000\n  max_attempts: 1\nschedule:\n  incremental: '@every 1h'\n  full: '@every 1h'\n"))
	h.migrate()
	h.load(crmRows(2))
	h.emu.SetFaults(sinchtest.Faults{ErrorRate: 1})
	d := h.startDaemon()
	var body string
	eventually(t, "/readyz answers 503 after the failed first run", func() bool {
		body = httpGet(t, "http://"+d.addr+"/readyz")
		return strings.HasPrefix(body, "not ready: last run failed: ")
	})
	if !strings.Contains(body, "500") && !strings.Contains(body, "503") && !strings.Contains(body, "INTERNAL") && !strings.Contains(body, "UNAVAILABLE") {
		t.Errorf("/readyz does not name Sinch's error: %q", body)
	}
}
