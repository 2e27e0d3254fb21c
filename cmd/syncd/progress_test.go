package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/creack/pty"
	"go.uber.org/zap"

	contactsync "github.com/syncd/syncd/sync"
)

// TestBackfillProgressOnATerminal runs a backfill with stderr on a
// pseudo-terminal and checks that the progress bar renders there, and that
// the same backfill piped writes no escape codes.
func TestBackfillProgressOnATerminal(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	h.load(crmRows(60))

	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	screen := make(chan string, 1)
	go func() {
		var buf bytes.Buffer
		_, _ = io.Copy(&buf, ptmx) // ends when the tty side closes
		screen <- buf.String()
	}()
	var out bytes.Buffer
	code := run(context.Background(), []string{"--config", h.config, "backfill"}, &out, tty, func(k string) string { return h.env[k] })
	tty.Close()
	drawn := <-screen
	if code != 0 {
		t.Fatalf("backfill exited %d:\n%s\n%s", code, out.String(), drawn)
	}
	for _, want := range []string{"reading: 60 CRM rows, 0 Sinch contacts", "applying", "applied 60 of 60 operations"} {
		if !strings.Contains(drawn, want) {
			t.Errorf("the terminal shows no %q:\n%q", want, drawn)
		}
	}

	// Piped: no bar, no escape codes.
	h.load(crmRows(70))
	h.env["SYNCD_LOG_LEVEL"] = "info"
	code, stdout, stderr := h.run("backfill")
	if code != 0 {
		t.Fatalf("piped backfill exited %d:\n%s%s", code, stdout, stderr)
	}
	if strings.Contains(stdout+stderr, "\x1b[") {
		t.Errorf("piped output has escape codes:\n%q\n%q", stdout, stderr)
	}
	if !strings.Contains(stderr, `"msg":"progress"`) {
		t.Errorf("piped backfill logs no progress line:\n%s", stderr)
	}
	// The run's last line is its own, not a progress line after it.
	if strings.LastIndex(stderr, `"msg":"progress"`) > strings.Index(stderr, `"msg":"run finished"`) {
		t.Errorf("a progress line follows the run's end:\n%s", stderr)
	}
}

// Log lines on a terminal are coloured unless NO_COLOR is set or TERM is
// dumb.
func TestLogColour(t *testing.T) {
	for _, tc := range []struct {
		env    map[string]string
		colour bool
	}{
		{map[string]string{}, true},
		{map[string]string{"NO_COLOR": "1"}, false},
		{map[string]string{"TERM": "dumb"}, false},
	} {
		ptmx, tty, err := pty.Open()
		if err != nil {
			t.Fatal(err)
		}
		screen := make(chan string, 1)
		go func() {
			var buf bytes.Buffer
			_, _ = io.Copy(&buf, ptmx)
			screen <- buf.String()
		}()
		e := &env{stdout: io.Discard, stderr: tty, getenv: func(k string) string { return tc.env[k] }}
		log, err := e.logger(LogConfig{Level: "info", Format: "auto"})
		if err != nil {
			t.Fatal(err)
		}
		log.Warn("a line")
		tty.Close()
		got := <-screen
		ptmx.Close()
		if !strings.Contains(got, "a line") || strings.Contains(got, "\x1b[") != tc.colour {
			t.Errorf("%v: colour %v wanted, got %q", tc.env, tc.colour, got)
		}
	}
}

// A command cut short by SIGINT or SIGTERM says so and exits 130, whatever
// failed on the way (here: reaching the database).
func TestInterruptedCommandSaysSo(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errOut bytes.Buffer
	code := run(ctx, []string{"--config", h.config, "backfill"}, &out, &errOut, func(k string) string { return h.env[k] })
	if code != exitInterrupted || strings.TrimSpace(errOut.String()) != "syncd: interrupted" {
		t.Errorf("exit %d, stderr %q; want 130 and \"syncd: interrupted\"", code, errOut.String())
	}
}

// TestBackfillInterruptSaysHowToResume cancels a backfill (Ctrl-C) mid-way:
// it stops cleanly, says how to resume, and the next backfill finishes with
// one contact per row.
func TestBackfillInterruptSaysHowToResume(t *testing.T) {
	h := newHarness(t)
	h.setConfig("sinch:\n  rate_limit_rps: 300\n  max_concurrency: 2\n")
	h.migrate()
	h.load(crmRows(200))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var out, errOut bytes.Buffer
	go func() {
		done <- run(ctx, []string{"--config", h.config, "backfill"}, &out, &errOut, func(k string) string { return h.env[k] })
	}()
	eventually(t, "the backfill is creating contacts", func() bool { return h.emu.Calls("create") >= 10 })
	cancel()
	if code := <-done; code != exitInterrupted {
		t.Fatalf("interrupted backfill exited %d, want %d:\n%s%s", code, exitInterrupted, out.String(), errOut.String())
	}
	if !strings.Contains(errOut.String(), "run syncd backfill again") {
		t.Errorf("no resume hint:\n%s", errOut.String())
	}
	if code, o, e := h.run("backfill"); code != 0 {
		t.Fatalf("resumed backfill exited %d:\n%s%s", code, o, e)
	}
	for ext, cs := range h.byExternalID() {
		if len(cs) != 1 {
			t.Errorf("%s has %d contacts", ext, len(cs))
		}
	}
	if n := len(h.emu.Contacts()); n != 200 {
		t.Errorf("%d contacts, want 200", n)
	}
}

// A log line clears the bar before it is written; the reading phase counts
// rows and contacts apart; an interrupted apply ends on what was done.
func TestProgressViewOnATerminal(t *testing.T) {
	var screen bytes.Buffer
	v := newProgressView(&screen, true, true, zap.NewNop())
	c := &console{w: &screen}
	c.draw(v)

	v.update(contactsync.Progress{Phase: contactsync.PhaseReading, CRMRows: 5, Contacts: 3})
	if !strings.Contains(screen.String(), "reading: 5 CRM rows, 3 Sinch contacts") || strings.Contains(screen.String(), "8 items") {
		t.Errorf("the reading bar does not count rows and contacts apart:\n%q", screen.String())
	}
	barEnd := screen.Len()
	if _, err := c.Write([]byte("a log line\n")); err != nil {
		t.Fatal(err)
	}
	between, _, _ := strings.Cut(screen.String()[barEnd:], "a log line")
	if !strings.HasSuffix(between, "\r") || strings.TrimSpace(between) != "" {
		t.Errorf("the bar was not cleared before the log line: %q", between)
	}

	v.update(contactsync.Progress{Phase: contactsync.PhaseApplying, CRMRows: 5, Contacts: 3, Total: 10, Done: 4})
	c.draw(nil)
	v.finish()
	out := screen.String()
	if !strings.HasSuffix(out, "applied 4 of 10 operations; 6 not sent\n") || strings.Contains(out, "10/10") || strings.Contains(out, "100%") {
		t.Errorf("an unfinished apply does not end on what was done:\n%q", out)
	}
}
