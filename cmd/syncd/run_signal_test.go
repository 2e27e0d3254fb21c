package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// notifySocket is systemd's end of the notify protocol: a datagram socket
// that a `syncd run` started with NOTIFY_SOCKET pointing at it writes to.
type notifySocket struct {
	path string
	conn *net.UnixConn
	msgs chan string
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	// A short path: a unix socket's name is limited to about 100 bytes.
	dir, err := os.MkdirTemp("", "sd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &notifySocket{path: filepath.Join(dir, "notify"), msgs: make(chan string, 1024)}
	s.conn, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: s.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := s.conn.Read(buf)
			if err != nil {
				return
			}
			for _, line := range strings.Split(string(buf[:n]), "\n") {
				s.msgs <- line
			}
		}
	}()
	t.Cleanup(func() { s.conn.Close(); <-done })
	return s
}

// await returns the first message starting with prefix, skipping others.
func (s *notifySocket) await(t *testing.T, prefix string) string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case m := <-s.msgs:
			if strings.HasPrefix(m, prefix) {
				return m
			}
		case <-deadline:
			t.Fatalf("no %s from syncd run within 30s", prefix)
			return ""
		}
	}
}

// quietFor waits until no message starting with prefix has come for
// quiet, and fails after within.
func (s *notifySocket) quietFor(t *testing.T, prefix string, quiet, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	timer := time.NewTimer(quiet)
	defer timer.Stop()
	for {
		select {
		case m := <-s.msgs:
			if strings.HasPrefix(m, prefix) {
				timer.Reset(quiet)
			}
		case <-timer.C:
			return
		case <-deadline:
			t.Fatalf("%s kept coming for %s", prefix, within)
		}
	}
}

// process is the real syncd binary (this test binary run as main) running
// `syncd run` under a notify socket, as systemd starts it.
type runProcess struct {
	cmd    *exec.Cmd
	exited chan error
	stderr *syncBuffer
}

func (h *harness) startRunProcess(notify *notifySocket, extraEnv ...string) *runProcess {
	h.t.Helper()
	p := &runProcess{cmd: exec.Command(os.Args[0], "--config", h.config, "run"), exited: make(chan error, 1), stderr: &syncBuffer{}}
	p.cmd.Env = append(os.Environ(), "SYNCD_TEST_RUN_MAIN=1", "NOTIFY_SOCKET="+notify.path)
	p.cmd.Env = append(p.cmd.Env, extraEnv...)
	for k, v := range h.env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	h.t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
	return p
}

func (h *harness) finishedRuns() int {
	var n int
	h.store.DB().Raw(`SELECT count(*) FROM syncd.runs WHERE finished_at IS NOT NULL`).Scan(&n)
	return n
}

// The real `syncd run` under systemd's notify protocol: READY=1, watchdog
// pings, SIGHUP reloads the configuration (RELOADING=1 then READY=1; a new
// schedule takes effect) instead of killing the process, and SIGTERM asks
// systemd to wait shutdown_timeout and a margin, then exits 0.
func TestRunSignals(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	h.setConfig(daemonConfig("schedule:\n  incremental: '@every 1h'\n  full: '@every 1h'\n"))
	notify := newNotifySocket(t)
	p := h.startRunProcess(notify, "WATCHDOG_USEC=1000000")
	notify.await(t, "READY=1")
	notify.await(t, "WATCHDOG=1")
	eventually(t, "the first run", func() bool { return h.finishedRuns() >= 1 })

	h.load(crmRows(1))
	h.rewriteConfig(daemonConfig("schedule:\n  incremental: '@every 1s'\n  full: '@every 1h'\n"))
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if m := notify.await(t, "RELOADING=1"); m == "" {
		t.Fatal("no RELOADING=1")
	}
	notify.await(t, "MONOTONIC_USEC=")
	notify.await(t, "READY=1")
	eventually(t, "the reloaded schedule syncs the new row", func() bool { return len(h.emu.Contacts()) == 1 })
	select {
	case err := <-p.exited:
		t.Fatalf("syncd run exited on SIGHUP: %v\n%s", err, p.stderr)
	default:
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	notify.await(t, "STOPPING=1")
	// shutdown_timeout 10s (daemonConfig) and the 15s margin, in µs.
	if m := notify.await(t, "EXTEND_TIMEOUT_USEC="); m != "EXTEND_TIMEOUT_USEC=25000000" {
		t.Errorf("at stop: %s, want EXTEND_TIMEOUT_USEC=25000000", m)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Errorf("syncd run exited with %v on SIGTERM, want 0:\n%s", err, p.stderr)
		}
		p.exited <- err
	case <-time.After(30 * time.Second):
		t.Fatal("syncd run did not stop within 30s of SIGTERM")
	}
}

// The watchdog is pinged only while the runs make progress: a run stuck on
// the database (here a lock the test holds on the journal) stops the pings
// within its silence bound, and they come back once it moves again.
func TestWatchdogStopsOnAStuckRun(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	// A silence bound of 3 × (1s + 1s).
	h.setConfig(daemonConfig("sinch:\n  timeout: 1s\n  max_retry_time: 1s\n  rate_limit_rps: 1000\n" +
		"schedule:\n  incremental: '@every 1s'\n  full: '@every 1h'\n"))
	notify := newNotifySocket(t)
	h.startRunProcess(notify, "WATCHDOG_USEC=1000000")
	notify.await(t, "READY=1")
	eventually(t, "the first runs", func() bool { return h.finishedRuns() >= 2 })
	notify.await(t, "WATCHDOG=1")

	tx, err := h.store.SQL().BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`LOCK TABLE syncd.journal IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	h.load(crmRows(1)) // the next run plans a create, and waits to journal it
	notify.quietFor(t, "WATCHDOG=1", 3*time.Second, 30*time.Second)
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	notify.await(t, "WATCHDOG=1")
	eventually(t, "the run goes on", func() bool { return len(h.emu.Contacts()) == 1 })
}
