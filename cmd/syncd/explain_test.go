package main

import (
	"encoding/json"
	"slices"
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

// The timeline shows every operation's fields old -> new, and --redact
// hides every value in both formats but keeps ids, fields, reasons and
// statuses.
func TestExplainValuesAndRedact(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	rows := crmRows(3)
	rows[2].Phone = str("call me")
	h.load(rows)
	backfill := func(args ...string) {
		t.Helper()
		if code, out, errOut := h.run(append([]string{"backfill"}, args...)...); code != 0 {
			t.Fatalf("backfill exited %d:\n%s%s", code, out, errOut)
		}
	}
	backfill()
	c1 := h.byExternalID()["crm-0001"][0]
	// A duplicate to merge and a rename to patch, then an edit left pending.
	dup := h.emu.Seed(sinch.Contact{ExternalID: "crm-0001", DisplayName: "Duplicate Person", Email: "dup@example.com"})[0]
	rows[0].DisplayName = str("Renamed In CRM")
	h.load(rows[:1])
	backfill()
	rows[0].Email = str("new@example.com")
	h.load(rows[:1])

	type change struct{ Field, Old, New string }
	type explained struct {
		Operations []struct {
			Kind    string   `json:"kind"`
			Changes []change `json:"changes"`
		} `json:"operations"`
		Timeline []struct {
			Kind            string   `json:"kind"`
			Status          string   `json:"status"`
			ContactID       string   `json:"contact_id"`
			SourceContactID string   `json:"source_contact_id"`
			Reason          string   `json:"reason"`
			Changes         []change `json:"changes"`
		} `json:"timeline"`
	}
	explain := func(args ...string) string {
		t.Helper()
		code, out, errOut := h.run(append([]string{"explain"}, args...)...)
		if code != 0 {
			t.Fatalf("explain %v exited %d:\n%s%s", args, code, out, errOut)
		}
		return out
	}
	decode := func(out string) explained {
		t.Helper()
		var ex explained
		if err := json.Unmarshal([]byte(out), &ex); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return ex
	}

	ex := decode(explain("--format", "json", "crm-0001"))
	byKind := make(map[string]int)
	for i, e := range ex.Timeline {
		byKind[e.Kind] = i
	}
	if len(ex.Timeline) != 3 || len(byKind) != 3 {
		t.Fatalf("crm-0001's timeline is %+v, want a create, a merge and a patch", ex.Timeline)
	}
	if c := ex.Timeline[byKind["create"]]; !slices.Contains(c.Changes, change{"display_name", "", "Person 1"}) ||
		!slices.Contains(c.Changes, change{"email", "", "p1@example.com"}) {
		t.Errorf("the create's changes %+v lack the values it sent", c.Changes)
	}
	if m := ex.Timeline[byKind["merge"]]; m.SourceContactID != dup.ID || m.ContactID != c1.ID ||
		!slices.Contains(m.Changes, change{"display_name", "Duplicate Person", ""}) {
		t.Errorf("the merge %+v lacks what its source had", m)
	}
	if p := ex.Timeline[byKind["patch"]]; !slices.Equal(p.Changes, []change{{"display_name", "Person 1", "Renamed In CRM"}}) {
		t.Errorf("the patch's changes are %+v, want display_name Person 1 -> Renamed In CRM", p.Changes)
	}
	if len(ex.Operations) != 1 || !slices.Equal(ex.Operations[0].Changes, []change{{"email", "p1@example.com", "new@example.com"}}) {
		t.Errorf("pending operations %+v, want the email patch", ex.Operations)
	}
	text := explain("crm-0001")
	for _, want := range []string{`sent: display_name "Person 1", email "p1@example.com"`,
		`merged the source away: display_name "Duplicate Person", email "dup@example.com"`,
		`display_name "Person 1" → "Renamed In CRM"`, `email "p1@example.com" → "new@example.com"`} {
		if !strings.Contains(text, want) {
			t.Errorf("explain text lacks %q:\n%s", want, text)
		}
	}

	values := []string{"Person 1", "Renamed In CRM", "p1@example.com", "new@example.com", "46730000001", "Duplicate Person",
		"dup@example.com", "EN_US", "Person 3", "p3@example.com", "call me"}
	for _, tc := range []struct {
		id   string
		keep []string
	}{
		{"crm-0001", []string{"crm-0001", c1.ID, dup.ID, "display_name", "email", "channel_identities", "SMS", "done",
			"drift", "the contact differs from the CRM record", "no Sinch contact carries this external_id", "(redacted)"}},
		{"crm-0003", []string{"crm-0003", "phone", "is not a phone number: it contains letters", "rejected", "(redacted)"}},
	} {
		for _, format := range []string{"text", "json"} {
			out := explain("--redact", "--format", format, tc.id)
			for _, v := range values {
				if strings.Contains(out, v) {
					t.Errorf("%s --redact --format %s shows %q:\n%s", tc.id, format, v, out)
				}
			}
			for _, k := range tc.keep {
				if !strings.Contains(out, k) {
					t.Errorf("%s --redact --format %s lacks %q:\n%s", tc.id, format, k, out)
				}
			}
		}
	}
	plain, redacted := decode(explain("--format", "json", "crm-0001")), decode(explain("--redact", "--format", "json", "crm-0001"))
	for i := range plain.Timeline {
		p, r := plain.Timeline[i], redacted.Timeline[i]
		if p.Kind != r.Kind || p.Status != r.Status || p.ContactID != r.ContactID || len(p.Changes) != len(r.Changes) ||
			(len(r.Changes) > 0 && r.Changes[0].Field != p.Changes[0].Field) {
			t.Errorf("--redact changed more than values: %+v against %+v", r, p)
		}
		// An empty value stays empty: "(redacted)" would claim one.
		for j, c := range r.Changes {
			if (p.Changes[j].Old == "") != (c.Old == "") || (p.Changes[j].New == "") != (c.New == "") {
				t.Errorf("--redact of %s %q → %q shows %q → %q", c.Field, p.Changes[j].Old, p.Changes[j].New, c.Old, c.New)
			}
		}
	}

	// A delete: the fields of the contact it removed.
	now := time.Now()
	rows[1].DeletedAt = &now
	h.load(rows[1:2])
	backfill("--allow-mass-delete")
	if out := explain("crm-0002"); !strings.Contains(out, `removed the contact: display_name "Person 2", email "p2@example.com"`) {
		t.Errorf("explain of a deleted record lacks what the delete removed:\n%s", out)
	}
	if out := explain("--redact", "crm-0002"); strings.Contains(out, "Person 2") || !strings.Contains(out, "removed the contact: display_name, email") {
		t.Errorf("explain --redact of a deleted record:\n%s", out)
	}
}

// An external_id holding ESC[2J reaches the operator's terminal escaped,
// as in syncd diff.
func TestExplainEscapesTerminalControls(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	rows := crmRows(1)
	rows[0].ExternalID = "crm-\x1b[2J"
	rows[0].DisplayName = str("Eve\x1b]0;owned\x07")
	h.load(rows)
	if code, out, errOut := h.run("backfill"); code != 0 {
		t.Fatalf("backfill exited %d:\n%s%s", code, out, errOut)
	}
	code, out, errOut := h.run("explain", rows[0].ExternalID)
	if code != 0 {
		t.Fatalf("explain exited %d:\n%s%s", code, out, errOut)
	}
	if strings.ContainsAny(out+errOut, "\x1b\x07") {
		t.Errorf("explain sent terminal controls:\n%q", out)
	}
	if !strings.Contains(out, `crm-\x1b[2J`) {
		t.Errorf("explain does not show the external id escaped:\n%s", out)
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
