package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/syncd/syncd/sinch"
)

func TestExplain(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	rows := crmRows(3)
	rows[2].Phone = str("call me")
	h.load(rows)
	if code, out, errOut := h.run("backfill"); code != 0 {
		t.Fatalf("backfill exited %d:\n%s%s", code, out, errOut)
	}
	rows[0].DisplayName = str("Renamed In CRM")
	h.load(rows[:1])
	c1, c2 := h.byExternalID()["crm-0001"][0], h.byExternalID()["crm-0002"][0]
	writes := h.writes()

	type explained struct {
		ExternalID string `json:"external_id"`
		Record     *struct {
			DisplayName *string `json:"display_name"`
		} `json:"record"`
		Normalized *struct {
			ChannelIdentities []sinch.ChannelIdentity `json:"channel_identities"`
		} `json:"normalized"`
		Rejection *struct {
			Column string `json:"column"`
		} `json:"rejection"`
		Link *struct {
			ContactID string `json:"contact_id"`
		} `json:"link"`
		Contacts   []sinch.Contact `json:"contacts"`
		Operations []struct {
			Kind       string   `json:"kind"`
			UpdateMask []string `json:"update_mask"`
		} `json:"operations"`
		Verdict  string `json:"verdict"`
		Timeline []struct {
			Kind     string          `json:"kind"`
			Status   string          `json:"status"`
			RunID    int64           `json:"run_id"`
			Contacts []sinch.Contact `json:"contacts"`
		} `json:"timeline"`
	}
	explain := func(id string) explained {
		t.Helper()
		code, out, errOut := h.run("explain", "--format", "json", id)
		if code != 0 {
			t.Fatalf("explain %s exited %d:\n%s%s", id, code, out, errOut)
		}
		var ex explained
		if err := json.Unmarshal([]byte(out), &ex); err != nil {
			t.Fatalf("explain %s: %v\n%s", id, err, out)
		}
		return ex
	}

	// A record edited since the sync: the pending patch and its history.
	ex := explain("crm-0001")
	if ex.Record == nil || ex.Record.DisplayName == nil || *ex.Record.DisplayName != "Renamed In CRM" ||
		ex.Normalized == nil || len(ex.Normalized.ChannelIdentities) == 0 || ex.Link == nil || len(ex.Contacts) != 1 ||
		ex.Link.ContactID != ex.Contacts[0].ID {
		t.Errorf("crm-0001: %+v", ex)
	}
	if len(ex.Operations) != 1 || ex.Operations[0].Kind != "patch" || strings.Join(ex.Operations[0].UpdateMask, ",") != "display_name" {
		t.Errorf("crm-0001: operations %+v, want the display_name patch", ex.Operations)
	}
	if len(ex.Timeline) != 1 || ex.Timeline[0].Kind != "create" || ex.Timeline[0].Status != "done" || ex.Timeline[0].RunID == 0 {
		t.Errorf("crm-0001: timeline %+v, want its create", ex.Timeline)
	}

	// By Sinch contact id: the same record, in sync.
	ex = explain(c2.ID)
	if ex.ExternalID != "crm-0002" || len(ex.Operations) != 0 || !strings.Contains(ex.Verdict, "in sync") {
		t.Errorf("%s: %+v", c2.ID, ex)
	}

	// A rejected row: why, and the reject in the journal.
	ex = explain("crm-0003")
	if ex.Rejection == nil || ex.Rejection.Column != "phone" || len(ex.Timeline) != 1 || ex.Timeline[0].Kind != "reject" {
		t.Errorf("crm-0003: %+v", ex)
	}

	// The text form carries the same parts.
	code, out, _ := h.run("explain", "crm-0001")
	for _, want := range []string{"CRM row as read:", `"Renamed In CRM"`, "As normalised:", "Link:", "contact " + c1.ID, "A diff now:",
		"patch", "Timeline (journal):", "create", "done"} {
		if !strings.Contains(out, want) {
			t.Errorf("explain text lacks %q:\n%s", want, out)
		}
	}
	if code != 0 {
		t.Errorf("explain exited %d", code)
	}

	if code, _, errOut := h.run("explain", "nobody"); code != exitError || !strings.Contains(errOut, "nowhere in the journal") {
		t.Errorf("explain of an unknown id exited %d: %s", code, errOut)
	}
	if h.writes() != writes {
		t.Errorf("explain wrote to Sinch: %d writes, want %d", h.writes(), writes)
	}

	// A deleted record: the delete in its timeline, with what it removed.
	now := time.Now()
	rows[1].DeletedAt = &now
	h.load(rows[1:2])
	if code, out, errOut := h.run("backfill", "--allow-mass-delete"); code != 0 {
		t.Fatalf("backfill exited %d:\n%s%s", code, out, errOut)
	}
	ex = explain("crm-0002")
	if len(ex.Contacts) != 0 || len(ex.Operations) != 0 || !strings.Contains(ex.Verdict, "deleted") || len(ex.Timeline) != 2 {
		t.Fatalf("crm-0002 after its delete: %+v", ex)
	}
	if del := ex.Timeline[1]; del.Kind != "delete" || del.Status != "done" || len(del.Contacts) != 1 || del.Contacts[0].ID != c2.ID {
		t.Errorf("crm-0002's delete in the timeline: %+v", del)
	}
}

// syncd.record_status has one row per record with its contact, its last
// operation and its last reject.
func TestRecordStatusView(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	rows := crmRows(3)
	rows[2].Phone = str("call me")
	h.load(rows)
	if code, out, errOut := h.run("backfill"); code != 0 {
		t.Fatalf("backfill exited %d:\n%s%s", code, out, errOut)
	}
	type status struct {
		ExternalID       string
		ContactID        *string
		LastOperation    *string
		LastOutcome      *string
		LastRejectReason *string
	}
	var got []status
	if err := h.store.DB().Raw(`SELECT external_id, contact_id, last_operation, last_outcome, last_reject_reason
		FROM syncd.record_status WHERE project_id = 'p1' ORDER BY external_id`).Scan(&got).Error; err != nil {
		t.Fatal(err)
	}
	contacts := h.byExternalID()
	if len(got) != 3 {
		t.Fatalf("record_status has %d rows, want 3: %+v", len(got), got)
	}
	for _, s := range got[:2] {
		if s.ContactID == nil || *s.ContactID != contacts[s.ExternalID][0].ID || s.LastOperation == nil || *s.LastOperation != "create" ||
			s.LastOutcome == nil || *s.LastOutcome != "done" || s.LastRejectReason != nil {
			t.Errorf("%s: %+v", s.ExternalID, s)
		}
	}
	if s := got[2]; s.ContactID != nil || s.LastRejectReason == nil || !strings.Contains(*s.LastRejectReason, "phone") {
		t.Errorf("the rejected row: %+v", s)
	}
}

// explain reads the record through --project's filter and looks at its
// Sinch project: a row of another project's is no record of this one's.
func TestExplainOfAProject(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	h.twoProjects("")
	h.load(crmRows(2))
	h.setRegion("eu", "crm-0001")
	h.setRegion("us", "crm-0002")
	if code, out, errOut := h.run("--project", "us", "backfill"); code != 0 {
		t.Fatalf("backfill exited %d:\n%s%s", code, out, errOut)
	}
	code, out, errOut := h.run("--project", "us", "explain", "crm-0002")
	if code != 0 || !strings.Contains(out, "in sync: a diff would do nothing") {
		t.Errorf("explain --project us exited %d:\n%s%s", code, out, errOut)
	}
	code, out, errOut = h.run("--project", "eu", "explain", "crm-0002")
	if code != exitError || !strings.Contains(errOut, `"crm-0002" is no CRM external_id in crm_contacts WHERE region = 'eu'`) {
		t.Errorf("explain --project eu of a us row exited %d:\n%s%s", code, out, errOut)
	}
}
