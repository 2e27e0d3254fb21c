package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/sinch/sinchtest"
)

func str(s string) *string { return &s }

// crmRows builds n valid CRM rows crm-0001… with distinct phones.
func crmRows(n int) []crm.Record {
	rows := make([]crm.Record, n)
	for i := range rows {
		rows[i] = crm.Record{
			ExternalID:  fmt.Sprintf("crm-%04d", i+1),
			DisplayName: str(fmt.Sprintf("Person %d", i+1)),
			Email:       str(fmt.Sprintf("p%d@example.com", i+1)),
			Phone:       str(fmt.Sprintf("+4673%07d", i+1)),
			Language:    str("EN_US"),
			UpdatedAt:   time.Now(),
		}
	}
	return rows
}

func (h *harness) load(rows []crm.Record) {
	h.t.Helper()
	if err := crm.UpsertRecords(context.Background(), h.store.SQL(), "crm_contacts", rows); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) byExternalID() map[string][]sinch.Contact {
	out := make(map[string][]sinch.Contact)
	for _, c := range h.emu.Contacts() {
		out[c.ExternalID] = append(out[c.ExternalID], c)
	}
	return out
}

func TestBackfillConverges(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	const n = 45
	rows := crmRows(n)
	h.load(rows)
	// One row already mirrored but with a stale name, one duplicated, one
	// contact whose row is gone, one contact nobody owns.
	h.emu.Seed(
		sinch.Contact{ExternalID: "crm-0001", DisplayName: "Old Name", Email: "p1@example.com", Language: "EN_US",
			ChannelIdentities: []sinch.ChannelIdentity{{Channel: "SMS", Identity: "+46730000001"}, {Channel: "WHATSAPP", Identity: "+46730000001"}}},
		sinch.Contact{ExternalID: "crm-0002", Language: "EN_US", ChannelIdentities: []sinch.ChannelIdentity{{Channel: "SMS", Identity: "+46730000002"}}},
		sinch.Contact{ExternalID: "crm-0002", Language: "EN_US", ChannelIdentities: []sinch.ChannelIdentity{{Channel: "SMS", Identity: "+46730000002"}}},
		sinch.Contact{ExternalID: "crm-0999", Language: "EN_US", ChannelIdentities: []sinch.ChannelIdentity{{Channel: "SMS", Identity: "+46739999999"}}},
		sinch.Contact{Language: "EN_US", DisplayName: "Walk-in", ChannelIdentities: []sinch.ChannelIdentity{{Channel: "SMS", Identity: "+46700000000"}}},
	)

	// One delete among four owned contacts trips the fraction guard.
	code, out, errOut := h.run("backfill", "--allow-mass-delete")
	if code != 0 {
		t.Fatalf("backfill exited %d:\n%s%s", code, out, errOut)
	}
	got := h.byExternalID()
	for _, r := range rows {
		cs := got[r.ExternalID]
		if len(cs) != 1 {
			t.Fatalf("%s has %d contacts, want 1", r.ExternalID, len(cs))
		}
		c := cs[0]
		if c.DisplayName != *r.DisplayName || c.Email != *r.Email || c.Language != "EN_US" || len(c.ChannelIdentities) != 2 {
			t.Errorf("%s = %+v", r.ExternalID, c)
		}
	}
	if len(got["crm-0999"]) != 0 {
		t.Errorf("orphan crm-0999 was not deleted")
	}
	if walkIn := got[""]; len(walkIn) != 1 || walkIn[0].DisplayName != "Walk-in" {
		t.Errorf("the contact without external_id changed: %+v", walkIn)
	}

	// The second diff is empty and costs exactly ceil(N/20) list calls.
	h.emu.ResetCalls()
	code, out, errOut = h.run("diff")
	if code != 0 {
		t.Fatalf("diff after backfill exited %d:\n%s%s", code, out, errOut)
	}
	total := len(h.emu.Contacts())
	if want := (total + 19) / 20; h.emu.Calls(sinchtest.OpList) != want {
		t.Errorf("diff made %d list calls for %d contacts, want %d", h.emu.Calls(sinchtest.OpList), total, want)
	}
	calls := h.emu.CallCounts()
	delete(calls, sinchtest.OpToken) // a fresh process fetches its OAuth2 token
	if h.writes() != 0 || len(calls) != 1 {
		t.Errorf("diff made other calls: %v", h.emu.CallCounts())
	}
}

func TestBackfillEditsTombstonesAndRejects(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	rows := crmRows(30)
	h.load(rows)
	if code, out, errOut := h.run("backfill"); code != 0 {
		t.Fatalf("backfill exited %d:\n%s%s", code, out, errOut)
	}

	// An edited e-mail, a tombstone and a broken phone.
	rows[4].Email = str("changed@example.com")
	now := time.Now()
	rows[5].DeletedAt = &now
	rows[6].Phone = str("not a phone")
	h.load(rows[4:7])
	h.emu.ResetCalls()

	code, out, _ := h.run("diff", "--format", "json")
	if code != exitChangesPending {
		t.Fatalf("diff exited %d, want 2:\n%s", code, out)
	}
	if h.writes() != 0 {
		t.Fatalf("diff wrote to Sinch: %v", h.emu.CallCounts())
	}
	var report struct {
		Version    int            `json:"version"`
		Summary    map[string]int `json:"summary"`
		Operations []struct {
			Kind       string   `json:"kind"`
			ExternalID string   `json:"external_id"`
			ContactID  string   `json:"contact_id"`
			UpdateMask []string `json:"update_mask"`
			Reason     string   `json:"reason"`
		} `json:"operations"`
		Rejected []struct {
			ExternalID string `json:"external_id"`
			Reason     string `json:"reason"`
		} `json:"rejected"`
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("diff --format json: %v\n%s", err, out)
	}
	if report.Version != 1 {
		t.Errorf("version = %d, want 1", report.Version)
	}
	if report.Summary["patch"] != 1 || report.Summary["delete"] != 1 || report.Summary["rejected"] != 1 || report.Summary["unchanged"] != 27 {
		t.Errorf("summary = %v", report.Summary)
	}
	for _, op := range report.Operations {
		switch op.Kind {
		case "patch":
			if op.ExternalID != "crm-0005" || strings.Join(op.UpdateMask, ",") != "email" {
				t.Errorf("patch = %+v, want crm-0005 with mask [email]", op)
			}
		case "delete":
			if op.ExternalID != "crm-0006" {
				t.Errorf("delete = %+v, want crm-0006", op)
			}
		default:
			t.Errorf("unexpected operation %+v", op)
		}
	}
	if len(report.Rejected) != 1 || report.Rejected[0].ExternalID != "crm-0007" {
		t.Errorf("rejected = %+v", report.Rejected)
	}

	h.emu.ResetCalls()
	if code, out, errOut := h.run("backfill"); code != 0 {
		t.Fatalf("backfill exited %d:\n%s%s", code, out, errOut)
	}
	counts := h.emu.CallCounts()
	if counts[sinchtest.OpUpdate] != 1 || counts[sinchtest.OpDelete] != 1 || counts[sinchtest.OpCreate] != 0 {
		t.Errorf("backfill calls = %v, want one update and one delete", counts)
	}
	got := h.byExternalID()
	if len(got["crm-0006"]) != 0 {
		t.Error("tombstoned crm-0006 still in Sinch")
	}
	if len(got["crm-0007"]) != 1 {
		t.Error("the rejected row's contact must stay")
	}
	if c := got["crm-0005"]; len(c) != 1 || c[0].Email != "changed@example.com" {
		t.Errorf("crm-0005 = %+v", c)
	}
	if code, _, _ := h.run("backfill", "--strict"); code != exitError {
		t.Errorf("backfill --strict with a rejected row exited %d, want 1", code)
	}
}

func TestBackfillMassDeleteGuard(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	rows := crmRows(10)
	h.load(rows)
	if code, out, errOut := h.run("backfill"); code != 0 {
		t.Fatalf("backfill exited %d:\n%s%s", code, out, errOut)
	}
	// Half the CRM disappears, as when a view breaks; one row changes.
	if err := h.store.DB().Exec("DELETE FROM crm_contacts WHERE external_id > 'crm-0005'").Error; err != nil {
		t.Fatal(err)
	}
	rows[0].DisplayName = str("Renamed")
	h.load(rows[:1])

	code, out, _ := h.run("backfill")
	if code != exitDeletesWithheld {
		t.Fatalf("backfill exited %d, want %d:\n%s", code, exitDeletesWithheld, out)
	}
	got := h.byExternalID()
	if len(h.emu.Contacts()) != 10 || got["crm-0001"][0].DisplayName != "Renamed" {
		t.Errorf("the guarded run must delete nothing and do the rest; contacts %d, crm-0001 %+v", len(h.emu.Contacts()), got["crm-0001"])
	}
	if code, out, errOut := h.run("backfill", "--allow-mass-delete"); code != 0 {
		t.Fatalf("backfill --allow-mass-delete exited %d:\n%s%s", code, out, errOut)
	}
	if n := len(h.emu.Contacts()); n != 5 {
		t.Errorf("%d contacts after the allowed mass delete, want 5", n)
	}

	// A source that returns nothing deletes nothing, whatever the flags.
	if err := h.store.DB().Exec("DELETE FROM crm_contacts").Error; err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := h.run("backfill", "--allow-mass-delete"); code != 0 {
		t.Fatalf("backfill of an empty source exited %d:\n%s%s", code, out, errOut)
	}
	if n := len(h.emu.Contacts()); n != 5 {
		t.Errorf("an empty CRM source deleted contacts: %d left, want 5", n)
	}
}

// TestBackfillLosingTheLockExitsNonZero: a backfill whose lock session is
// killed mid-run stops sending, says it lost the project lock, exits 1 and
// leaves its run failed; the next backfill finishes the job without a
// duplicate.
func TestBackfillLosingTheLockExitsNonZero(t *testing.T) {
	h := newHarness(t)
	h.setConfig("sinch:\n  rate_limit_rps: 300\n")
	h.migrate()
	const n = 1000
	h.load(crmRows(n))
	type exit struct {
		code        int
		out, errOut string
	}
	done := make(chan exit, 1)
	go func() {
		code, out, errOut := h.run("backfill")
		done <- exit{code, out, errOut}
	}()
	eventually(t, "the backfill creates contacts", func() bool { return h.emu.Calls(sinchtest.OpCreate) >= 50 })
	holder, held, err := h.store.LockHolder(context.Background(), "p1")
	if err != nil || !held {
		t.Fatalf("lock holder mid-run: %v %v", held, err)
	}
	if err := h.store.DB().Exec(`SELECT pg_terminate_backend(?, 30000)`, holder.PID).Error; err != nil {
		t.Fatal(err)
	}
	first := <-done
	if first.code != exitError || !strings.Contains(first.errOut, "lost the project lock") {
		t.Errorf("backfill that lost its lock exited %d:\n%s%s", first.code, first.out, first.errOut)
	}
	if created := len(h.emu.Contacts()); created >= n {
		t.Errorf("the backfill went on to create all %d contacts after losing its lock", created)
	}
	var outcome string
	if err := h.store.DB().Raw(`SELECT outcome FROM syncd.runs ORDER BY id LIMIT 1`).Scan(&outcome).Error; err != nil || outcome != "failed" {
		t.Errorf("first run recorded as %q (%v), want failed", outcome, err)
	}

	if code, out, errOut := h.run("backfill"); code != 0 {
		t.Fatalf("second backfill exited %d:\n%s%s", code, out, errOut)
	}
	got := h.byExternalID()
	if len(got) != n || len(h.emu.Contacts()) != n {
		t.Errorf("%d contacts for %d external ids and %d rows", len(h.emu.Contacts()), len(got), n)
	}
	if code, out, _ := h.run("diff"); code != 0 {
		t.Errorf("diff after the second backfill exited %d:\n%s", code, out)
	}
}

// Two projects read one table through their filters: each backfill writes
// its own rows to its own Sinch project, and a row that moves from one
// region to the other moves between the projects.
func TestBackfillTwoProjectsOverOneTable(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	us := h.twoProjects("")
	h.load(crmRows(6))
	h.setRegion("eu", "crm-0001", "crm-0002", "crm-0003")
	h.setRegion("us", "crm-0004", "crm-0005", "crm-0006")

	code, out, errOut := h.run("backfill")
	if code != exitError || strings.TrimSpace(errOut) != "syncd: the configuration names several projects (eu, us): say which with --project" {
		t.Fatalf("backfill without --project exited %d:\n%s%s", code, out, errOut)
	}
	if code, _, errOut := h.run("--project", "ap", "diff"); code != exitError || !strings.Contains(errOut, `--project "ap": the configuration names eu, us`) {
		t.Errorf("an unknown project exited %d: %s", code, errOut)
	}
	if h.writes()+us.CallCounts()[sinchtest.OpCreate] != 0 {
		t.Fatal("a refused command wrote to Sinch")
	}

	steps := []struct {
		name   string
		before func()
		args   []string
		eu, us []string
	}{
		{"eu", nil, []string{"--project", "eu", "backfill"}, []string{"crm-0001", "crm-0002", "crm-0003"}, nil},
		{"us", nil, []string{"--project", "us", "backfill"}, []string{"crm-0001", "crm-0002", "crm-0003"}, []string{"crm-0004", "crm-0005", "crm-0006"}},
		{"a row leaves eu", func() { h.setRegion("us", "crm-0003") }, []string{"--project", "eu", "backfill"},
			[]string{"crm-0001", "crm-0002"}, []string{"crm-0004", "crm-0005", "crm-0006"}},
		{"and joins us", nil, []string{"--project", "us", "backfill"},
			[]string{"crm-0001", "crm-0002"}, []string{"crm-0003", "crm-0004", "crm-0005", "crm-0006"}},
	}
	for _, st := range steps {
		if st.before != nil {
			st.before()
		}
		if code, out, errOut := h.run(st.args...); code != 0 {
			t.Fatalf("%s: %v exited %d:\n%s%s", st.name, st.args, code, out, errOut)
		}
		if got := externalIDs(h.emu); !slices.Equal(got, st.eu) {
			t.Errorf("%s: eu's Sinch project holds %v, want %v", st.name, got, st.eu)
		}
		if got := externalIDs(us); !slices.Equal(got, st.us) {
			t.Errorf("%s: us's Sinch project holds %v, want %v", st.name, got, st.us)
		}
	}
	for _, p := range []string{"eu", "us"} {
		if code, out, errOut := h.run("--project", p, "diff"); code != 0 {
			t.Errorf("%s: diff after the backfills exited %d:\n%s%s", p, code, out, errOut)
		}
	}
	var links []struct {
		ProjectID string
		N         int
	}
	if err := h.store.DB().Raw(`SELECT project_id, count(*) AS n FROM syncd.links GROUP BY project_id ORDER BY project_id`).Scan(&links).Error; err != nil {
		t.Fatal(err)
	}
	if len(links) != 2 || links[0].ProjectID != "p1" || links[0].N != 2 || links[1].ProjectID != "p2" || links[1].N != 4 {
		t.Errorf("links by project = %v, want p1 2 and p2 4", links)
	}
}
