package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/syncd/syncd/sinch"
)

// TestPlanReviewApply: diff --out, then the CRM and Sinch change under the
// plan, then apply refuses exactly the operations whose preconditions broke
// and applies the rest.
func TestPlanReviewApply(t *testing.T) {
	h := newHarness(t)
	h.setConfig("sinch:\n  rate_limit_rps: 1000\nsync:\n  max_delete_fraction: 1\n")
	h.migrate()
	rows := crmRows(8)
	h.load(rows)
	if code, out, errOut := h.run("backfill"); code != 0 {
		t.Fatalf("backfill exited %d:\n%s%s", code, out, errOut)
	}

	// Pending work: three patches, a create and a delete.
	for _, i := range []int{0, 1, 2} {
		rows[i].DisplayName = str("Planned " + rows[i].ExternalID)
	}
	now := time.Now()
	rows[3].DeletedAt = &now
	rows = append(rows, crmRows(9)[8])
	h.load(rows)

	plan := filepath.Join(t.TempDir(), "plan.json")
	if code, out, _ := h.run("diff", "--out", plan); code != exitChangesPending {
		t.Fatalf("diff --out exited %d:\n%s", code, out)
	}
	if info, err := os.Stat(plan); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("plan file: %v, mode %v, want 0600", err, info.Mode())
	}

	// After the review: the CRM edits crm-0001 again; someone edits
	// crm-0002's contact in Sinch; crm-0009 gets a contact elsewhere.
	rows[0].DisplayName = str("Edited after the plan")
	h.load(rows[:1])
	contacts := h.byExternalID()
	c2 := contacts["crm-0002"][0]
	h.emu.Seed(sinch.Contact{ID: c2.ID, ExternalID: c2.ExternalID, DisplayName: "Touched in Sinch", Email: c2.Email,
		Language: c2.Language, ChannelIdentities: c2.ChannelIdentities})
	h.emu.Seed(sinch.Contact{ExternalID: "crm-0009", Language: "EN_US", ChannelIdentities: []sinch.ChannelIdentity{{Channel: "SMS", Identity: "46739000009"}}})

	h.emu.ResetCalls()
	code, out, errOut := h.run("apply", plan)
	if code != exitStalePlan {
		t.Fatalf("apply exited %d, want %d:\n%s%s", code, exitStalePlan, out, errOut)
	}
	var refused []string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "refused") {
			refused = append(refused, strings.Fields(line)[2])
		}
	}
	sort.Strings(refused)
	if want := []string{"crm-0001", "crm-0002", "crm-0009"}; strings.Join(refused, ",") != strings.Join(want, ",") {
		t.Errorf("refused %v, want %v:\n%s", refused, want, out)
	}
	got := h.byExternalID()
	if c := got["crm-0003"]; len(c) != 1 || c[0].DisplayName != "Planned crm-0003" {
		t.Errorf("crm-0003 = %+v, want the planned patch applied", c)
	}
	if len(got["crm-0004"]) != 0 {
		t.Error("the planned delete of crm-0004 was not applied")
	}
	if c := got["crm-0001"]; c[0].DisplayName != "Person 1" {
		t.Errorf("the stale patch of crm-0001 was applied: %+v", c)
	}
	if c := got["crm-0002"]; c[0].DisplayName != "Touched in Sinch" {
		t.Errorf("the stale patch of crm-0002 overwrote Sinch: %+v", c)
	}
	if len(got["crm-0009"]) != 1 {
		t.Errorf("crm-0009 has %d contacts: the stale create was sent", len(got["crm-0009"]))
	}

	// An old plan is refused whole.
	data, err := os.ReadFile(plan)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	raw["created_at"] = time.Now().Add(-2 * time.Hour).Format(time.RFC3339)
	data, _ = json.Marshal(raw)
	if err := os.WriteFile(plan, data, 0o600); err != nil {
		t.Fatal(err)
	}
	h.emu.ResetCalls()
	if code, _, errOut := h.run("apply", plan); code != exitError || !strings.Contains(errOut, "--max-age") {
		t.Errorf("an old plan: exit %d %q, want 1 naming --max-age", code, errOut)
	}
	if h.writes() != 0 {
		t.Errorf("an old plan wrote to Sinch: %v", h.emu.CallCounts())
	}
}

// An apply that refused every operation changed nothing: it is not reported
// as succeeded, neither in its summary nor in the run history.
func TestApplyThatRefusedEverythingIsNotASuccess(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	h.load(crmRows(1))
	plan := filepath.Join(t.TempDir(), "plan.json")
	if code, out, _ := h.run("diff", "--out", plan); code != exitChangesPending {
		t.Fatalf("diff --out exited %d:\n%s", code, out)
	}
	h.emu.Seed(sinch.Contact{ExternalID: "crm-0001", Language: "EN_US", ChannelIdentities: []sinch.ChannelIdentity{{Channel: "SMS", Identity: "46739000001"}}})
	code, out, errOut := h.run("apply", plan)
	if code != exitStalePlan || strings.Contains(out, "succeeded") || !strings.Contains(out, " refused in ") {
		t.Errorf("apply exited %d:\n%s%s", code, out, errOut)
	}
	if len(h.emu.Contacts()) != 1 {
		t.Errorf("%d contacts, want the one seeded", len(h.emu.Contacts()))
	}
	runs, err := h.store.LastRuns(t.Context(), "p1", 1)
	if err != nil || len(runs) != 1 || runs[0].Outcome != "refused" || runs[0].Counts["refused"] != 1 {
		t.Errorf("last run = %+v, %v; want outcome refused with 1 refused", runs, err)
	}
}

// A run that never started prints no summary of itself.
func TestNoSummaryForARunThatNeverStarted(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	lock, err := h.store.TryLockFullRun(t.Context(), "p1") // another full run is going
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lock.Release(context.Background()) })
	code, out, _ := h.run("backfill")
	if code != exitTempFail || strings.Contains(out, "Run 0") || out != "" {
		t.Errorf("backfill under a held lock exited %d and printed %q", code, out)
	}
}

// On a small project one delete trips the fraction guard: the plan says so
// in its summary line, apply withholds it and exits 3, and
// --allow-mass-delete applies it.
func TestApplyWithheldDeletes(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	rows := crmRows(4)
	h.load(rows)
	if code, out, errOut := h.run("backfill"); code != 0 {
		t.Fatalf("backfill exited %d:\n%s%s", code, out, errOut)
	}
	if err := h.store.DB().Exec("DELETE FROM crm_contacts WHERE external_id = 'crm-0004'").Error; err != nil {
		t.Fatal(err)
	}
	plan := filepath.Join(t.TempDir(), "plan.json")
	code, out, _ := h.run("diff", "--out", plan)
	if code != exitChangesPending {
		t.Fatalf("diff exited %d:\n%s", code, out)
	}
	var summary string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "Plan: ") {
			summary = line
		}
	}
	if !strings.Contains(summary, "1 to delete (1 withheld by the delete guard: ") || !strings.Contains(summary, "max_delete_fraction") {
		t.Errorf("the summary line does not say why the delete is withheld: %q\n%s", summary, out)
	}

	code, out, errOut := h.run("apply", plan)
	if code != exitDeletesWithheld || !strings.Contains(out, "0 deleted (1 withheld by the delete guard") {
		t.Errorf("apply exited %d, want %d:\n%s%s", code, exitDeletesWithheld, out, errOut)
	}
	if n := len(h.emu.Contacts()); n != 4 {
		t.Fatalf("%d contacts after a guarded apply, want 4", n)
	}
	if code, out, errOut := h.run("apply", "--allow-mass-delete", plan); code != 0 {
		t.Fatalf("apply --allow-mass-delete exited %d:\n%s%s", code, out, errOut)
	}
	if n := len(h.emu.Contacts()); n != 3 {
		t.Errorf("%d contacts after apply --allow-mass-delete, want 3", n)
	}
}

// A plan keeps the filter it read through: apply re-reads the project's
// rows only, and another project refuses the plan.
func TestApplyAProjectsPlan(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	us := h.twoProjects("")
	h.load(crmRows(3))
	h.setRegion("eu", "crm-0001", "crm-0002")
	h.setRegion("us", "crm-0003")
	plan := filepath.Join(t.TempDir(), "plan.json")
	if code, out, errOut := h.run("--project", "eu", "diff", "--out", plan); code != exitChangesPending {
		t.Fatalf("diff --out exited %d:\n%s%s", code, out, errOut)
	}
	var saved struct {
		Source, Filter string
	}
	if data, err := os.ReadFile(plan); err != nil || json.Unmarshal(data, &saved) != nil || saved.Source != "crm_contacts" || saved.Filter != "region = 'eu'" {
		t.Errorf("the plan's source = %+v (%v), want crm_contacts and eu's filter", saved, err)
	}
	if code, _, errOut := h.run("--project", "us", "apply", plan); code != exitError || !strings.Contains(errOut, "the plan is for project p1, the configuration for p2") {
		t.Errorf("apply of eu's plan to us exited %d: %s", code, errOut)
	}
	// crm-0002 leaves eu after the plan: its create no longer holds.
	h.setRegion("us", "crm-0002")
	code, out, errOut := h.run("--project", "eu", "apply", plan)
	if code != exitStalePlan || !strings.Contains(out, "refused  create crm-0002") {
		t.Errorf("apply exited %d:\n%s%s", code, out, errOut)
	}
	if got := externalIDs(h.emu); len(got) != 1 || got[0] != "crm-0001" {
		t.Errorf("eu's Sinch project holds %v, want crm-0001", got)
	}
	if n := len(us.Contacts()); n != 0 {
		t.Errorf("us's Sinch project holds %d contacts, want none", n)
	}
}
