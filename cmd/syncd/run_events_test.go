package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/sinch/sinchtest"
)

// freeAddr is a loopback address nothing listens on, for a daemon run as
// a process of its own (its address must be known before it starts).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// eventHarness has the CRM mirrored, a webhook listener address, and the
// emulator's webhook registered by `syncd webhooks register` to post there.
func eventHarness(t *testing.T, rows int) (*harness, string) {
	t.Helper()
	h := newHarness(t)
	h.migrate()
	h.load(crmRows(rows))
	if code, out, errOut := h.run("backfill"); code != 0 {
		t.Fatalf("backfill exited %d:\n%s%s", code, out, errOut)
	}
	addr := freeAddr(t)
	h.env["SYNCD_SINCH_APP_ID"] = "app1"
	h.env["SYNCD_WEBHOOK_SECRET"] = "hook-secret"
	h.setConfig(daemonConfig("schedule:\n  incremental: '@every 1h'\n  full: '@every 1h'\nwebhook:\n  listen: " + addr +
		"\n  public_url: http://" + addr + "/webhooks/sinch\n"))
	if code, out, errOut := h.run("webhooks", "register"); code != 0 {
		t.Fatalf("register exited %d:\n%s%s", code, out, errOut)
	}
	return h, addr
}

func (h *harness) queued() (pending, doneOnce, total int) {
	h.t.Helper()
	var q struct{ Pending, DoneOnce, Total int }
	if err := h.store.DB().Raw(`SELECT count(*) FILTER (WHERE done_at IS NULL) AS pending,
		count(*) FILTER (WHERE done_at IS NOT NULL AND attempts = 1) AS done_once, count(*) AS total
		FROM syncd.webhook_events`).Scan(&q).Error; err != nil {
		h.t.Fatal(err)
	}
	return q.Pending, q.DoneOnce, q.Total
}

func (h *harness) waitCallbacks() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.emu.Idle(ctx); err != nil {
		h.t.Fatalf("callbacks not delivered: %v (%+v)", err, h.emu.CallbackStats())
	}
}

// Events stored by a daemon that is then killed with SIGKILL before it
// processes them are processed, once each, by the next daemon, and the
// project converges.
func TestRunProcessesEventsStoredBeforeAKill(t *testing.T) {
	h, addr := eventHarness(t, 6)
	before := h.byExternalID()

	// Hold the project lock, so that the first daemon stores events but
	// cannot process them.
	lock, err := h.store.TryLock(context.Background(), "p1")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "--config", h.config, "run")
	cmd.Env = append(os.Environ(), "SYNCD_TEST_RUN_MAIN=1")
	for k, v := range h.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited; exited <- nil })
	eventually(t, "the first daemon receives callbacks", func() bool {
		resp, err := http.Post("http://"+addr+"/webhooks/sinch", "application/json", nil)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusUnauthorized
	})

	edited := []string{"crm-0001", "crm-0003", "crm-0004"}
	for _, ext := range edited {
		if _, err := h.emu.EditAsPerson(before[ext][0].ID, func(c *sinch.Contact) { c.DisplayName = "Hand Edit" }); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.emu.DeleteAsPerson(before["crm-0005"][0].ID); err != nil {
		t.Fatal(err)
	}
	h.waitCallbacks()
	if pending, _, _ := h.queued(); pending != 4 {
		t.Fatalf("%d events queued, want 4 (%+v)", pending, h.emu.CallbackStats())
	}
	_ = cmd.Process.Kill() // SIGKILL between receipt and processing
	<-exited
	exited <- nil
	if err := lock.Release(context.Background()); err != nil {
		t.Fatal(err)
	}

	h.emu.ResetCalls()
	h.startDaemon()
	eventually(t, "the next daemon puts everything back", func() bool {
		got := h.byExternalID()
		for _, ext := range edited {
			if cs := got[ext]; len(cs) != 1 || cs[0].DisplayName == "Hand Edit" {
				return false
			}
		}
		return len(got["crm-0005"]) == 1
	})
	// Its own writes come back as callbacks, which cost no write.
	h.waitCallbacks()
	eventually(t, "every event is processed", func() bool {
		pending, doneOnce, total := h.queued()
		return pending == 0 && doneOnce == total
	})
	if p, c := h.emu.Calls(sinchtest.OpUpdate), h.emu.Calls(sinchtest.OpCreate); p != 3 || c != 1 || h.writes() != 4 {
		t.Errorf("%v, want 3 patches and 1 create", h.emu.CallCounts())
	}
	if code, out, _ := h.run("diff"); code != 0 {
		t.Errorf("diff after the events exited %d, want 0 (nothing to do):\n%s", code, out)
	}
}

// With callbacks duplicated, reordered, delayed and dropped, every stored
// event is processed once, the delivered edits are put back, and a full run
// leaves nothing to do.
func TestRunConvergesThroughUnreliableCallbacks(t *testing.T) {
	h, _ := eventHarness(t, 20)
	h.emu.SetCallbackFaults(sinchtest.CallbackFaults{DuplicateRate: 0.5, ReorderRate: 0.5, DropRate: 0.2,
		Delay: time.Millisecond, Seed: 7})
	before := h.byExternalID()
	d := h.startDaemon()
	for i, ext := range []string{"crm-0002", "crm-0006", "crm-0007", "crm-0011", "crm-0015", "crm-0019"} {
		id := before[ext][0].ID
		if i%3 == 2 {
			if err := h.emu.DeleteAsPerson(id); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if _, err := h.emu.EditAsPerson(id, func(c *sinch.Contact) { c.Email = "hand@example.com" }); err != nil {
			t.Fatal(err)
		}
	}
	h.emu.AutoCreate(sinch.ChannelIdentity{Channel: "SMS", Identity: "46700000099"})
	eventually(t, "callbacks delivered and every event processed", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		if h.emu.Idle(ctx) != nil {
			return false
		}
		pending, doneOnce, total := h.queued()
		return total > 0 && pending == 0 && doneOnce == total
	})
	// The seed draws each fault at least once.
	if stats := h.emu.CallbackStats(); stats.Duplicated == 0 || stats.Dropped == 0 {
		t.Errorf("faults drawn: %+v; pick a seed that drops and duplicates", stats)
	}
	// The daemon's last event run may hold the project lock a little past
	// marking its events done: stopped, it holds none.
	if code := d.stop(t); code != exitOK {
		t.Fatalf("syncd run exited %d:\n%s", code, d.stderr)
	}
	if code, out, errOut := h.run("backfill"); code != 0 {
		t.Fatalf("backfill exited %d:\n%s%s", code, out, errOut)
	}
	h.emu.ResetCalls()
	if code, out, _ := h.run("diff"); code != 0 {
		t.Errorf("diff after the full run exited %d:\n%s", code, out)
	}
	for ext := range before {
		if cs := h.byExternalID()[ext]; len(cs) != 1 || cs[0].Email == "hand@example.com" {
			t.Errorf("%s: %+v", ext, cs)
		}
	}
}

// Sinch reports two contacts sharing an identity with
// CONTACT_IDENTITIES_DUPLICATION, which the emulator sends after the write
// that made them share it. The daemon takes it as it takes any event: a
// trigger to read the named contacts afresh, processed once, never a
// reason to write on its word. A contact Sinch auto-created with a
// record's number is left to the full run, which merges it; a person's
// edit that gave a record's contact another record's number is put back.
func TestRunHandlesIdentityDuplication(t *testing.T) {
	h, _ := eventHarness(t, 6)
	before := h.byExternalID()
	d := h.startDaemon()
	eventually(t, "the daemon's first run has finished", func() bool {
		var n int
		h.store.DB().Raw(`SELECT count(*) FROM syncd.runs WHERE kind = 'incremental' AND outcome <> 'running'`).Scan(&n)
		return n >= 1
	})
	h.emu.ResetCalls()

	// Sinch creates a contact for a message from crm-0002's number: the
	// event run its callbacks start merges it into crm-0002's contact, as
	// a full run would, with one write.
	auto := h.emu.AutoCreate(sinch.ChannelIdentity{Channel: "SMS", Identity: "46730000002"})
	eventually(t, "the auto-created contact merged into crm-0002's", func() bool {
		return len(h.byExternalID()[""]) == 0 && len(h.byExternalID()["crm-0002"]) == 1
	})
	h.waitCallbacks()
	eventually(t, "every event processed, once each", func() bool {
		pending, doneOnce, total := h.queued()
		return total >= 2 && pending == 0 && doneOnce == total
	})
	var named []string
	if err := h.store.DB().Raw(`SELECT jsonb_array_elements_text(d->'contact_ids') FROM syncd.webhook_events,
			jsonb_array_elements(payload->'duplicated_contact_identities_notification'->'duplicated_identities') AS d
		WHERE trigger = 'CONTACT_IDENTITIES_DUPLICATION' ORDER BY 1`).Scan(&named).Error; err != nil {
		t.Fatal(err)
	}
	if want := slices.Sorted(slices.Values([]string{auto.ID, before["crm-0002"][0].ID})); !slices.Equal(named, want) {
		t.Errorf("the duplication names %v, want %v", named, want)
	}
	if n, m := h.writes(), h.emu.Calls(sinchtest.OpMerge); n != 1 || m != 1 {
		t.Errorf("%d writes, want the one merge (%v)", n, h.emu.CallCounts())
	}

	// A person gives crm-0004's contact crm-0005's number too.
	h.emu.ResetCalls()
	c4 := before["crm-0004"][0]
	if _, err := h.emu.EditAsPerson(c4.ID, func(c *sinch.Contact) {
		c.ChannelIdentities = append(c.ChannelIdentities, sinch.ChannelIdentity{Channel: "SMS", Identity: "46730000005"})
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the edit is put back", func() bool {
		cs := h.byExternalID()["crm-0004"]
		return len(cs) == 1 && slices.Equal(cs[0].ChannelIdentities, c4.ChannelIdentities)
	})
	// The patch's own callback comes back too, and costs no write.
	h.waitCallbacks()
	eventually(t, "every event processed once", func() bool {
		pending, doneOnce, total := h.queued()
		return total >= 5 && pending == 0 && doneOnce == total
	})
	if n, p := h.writes(), h.emu.Calls(sinchtest.OpUpdate); n != 1 || p != 1 {
		t.Errorf("%d writes, want the one patch (%v)", n, h.emu.CallCounts())
	}
	if m := httpGet(t, "http://"+d.addr+"/metrics"); !strings.Contains(m,
		`syncd_webhook_events_applied_total{project="default",trigger="CONTACT_IDENTITIES_DUPLICATION"} 2`) {
		t.Error("/metrics does not count the two duplications applied")
	}

	// A full run finds nothing left to do; the daemon is stopped first, so
	// that its last event run holds no lock.
	if code := d.stop(t); code != exitOK {
		t.Fatalf("syncd run exited %d:\n%s", code, d.stderr)
	}
	if code, out, errOut := h.run("backfill"); code != 0 {
		t.Fatalf("backfill exited %d:\n%s%s", code, out, errOut)
	}
	if cs := h.byExternalID()[""]; len(cs) != 0 {
		t.Errorf("contacts without external_id left: %+v", cs)
	}
	if code, out, _ := h.run("diff"); code != 0 {
		t.Errorf("diff after the full run exited %d:\n%s", code, out)
	}
}
