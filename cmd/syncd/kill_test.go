package main

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/syncd/syncd/sinch/sinchtest"
)

// TestBackfillSurvivesKill9 kills a backfill at random points, many times,
// restarts it, and checks that the end state has exactly one contact per CRM
// record: a create whose answer was lost is found again, never repeated.
func TestBackfillSurvivesKill9(t *testing.T) {
	h := newHarness(t)
	h.setConfig("sinch:\n  rate_limit_rps: 2000\n  max_concurrency: 8\n")
	h.migrate()
	const n = 2000
	rows := crmRows(n)
	h.load(rows)
	h.emu.SetFaults(sinchtest.Faults{Latency: time.Millisecond, LatencyJitter: 3 * time.Millisecond})

	seed := time.Now().UnixNano()
	t.Logf("kill points seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	for kill := range 8 {
		before := h.emu.Calls(sinchtest.OpCreate)
		cmd := exec.Command(os.Args[0], "--config", h.config, "backfill")
		cmd.Env = append(os.Environ(), "SYNCD_TEST_RUN_MAIN=1")
		for k, v := range h.env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		target := before + 1 + rng.IntN(120)
		eventually(t, "the backfill creates contacts", func() bool {
			select {
			case err := <-exited:
				exited <- err
				return true
			default:
			}
			return h.emu.Calls(sinchtest.OpCreate) >= target
		})
		_ = cmd.Process.Kill() // SIGKILL: no chance to record anything
		<-exited
		t.Logf("kill %d after %d creates", kill, h.emu.Calls(sinchtest.OpCreate)-before)
	}

	h.emu.SetFaults(sinchtest.Faults{})
	if code, out, errOut := h.run("backfill"); code != 0 {
		t.Fatalf("final backfill exited %d:\n%s%s", code, out, errOut)
	}
	got := h.byExternalID()
	if len(h.emu.Contacts()) != n {
		t.Errorf("%d contacts for %d CRM records", len(h.emu.Contacts()), n)
	}
	for _, r := range rows {
		if c := got[r.ExternalID]; len(c) != 1 {
			t.Errorf("%s has %d contacts", r.ExternalID, len(c))
		}
	}
	var interrupted int64
	h.store.DB().Raw("SELECT count(*) FROM syncd.runs WHERE outcome = 'interrupted'").Scan(&interrupted)
	if interrupted != 8 {
		t.Errorf("%d runs recorded as interrupted, want the 8 killed ones", interrupted)
	}
	if code, _, _ := h.run("diff"); code != 0 {
		t.Errorf("diff after recovery exited %d, want 0", code)
	}
}
