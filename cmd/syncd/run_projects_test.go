package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/syncd/syncd/sinch/sinchtest"
)

// One `syncd run` serves two projects over one CRM table (crm.filter), each
// with its own Sinch project and credentials: each converges with its own
// rows, and a 5xx storm on one does not hold back the other's incremental
// runs.
func TestRunTwoProjects(t *testing.T) {
	h := newHarness(t)
	us, usSrv := sinchtest.Start(t, sinchtest.Options{ProjectID: "p2", KeyID: "key-us", KeySecret: "us-s3cret"})
	h.env["SYNCD_US_SINCH_PROJECT_ID"] = "p2"
	h.env["SYNCD_US_SINCH_KEY_ID"] = "key-us"
	h.env["SYNCD_US_SINCH_KEY_SECRET"] = "us-s3cret"
	h.setConfig(daemonConfig(fmt.Sprintf(`crm:
  notify: true
schedule:
  incremental: '@every 1h'
  full: '@every 1h'
projects:
  - name: eu
    sinch: {max_retry_time: 3s}
    crm: {filter: "external_id LIKE 'eu-%%'"}
  - name: us
    sinch: {base_url: %q, token_url: %q}
    crm: {filter: "external_id LIKE 'us-%%'"}
`, usSrv.URL, usSrv.URL+"/oauth2/token")))
	h.migrate()
	const n = 40
	rows := crmRows(2 * n)
	for i := range rows {
		region := "eu"
		if i >= n {
			region = "us"
		}
		rows[i].ExternalID = fmt.Sprintf("%s-%04d", region, i+1)
	}
	h.load(rows)
	eu := h.emu

	d := h.startDaemon()
	eventually(t, "both projects backfilled", func() bool { return len(eu.Contacts()) == n && len(us.Contacts()) == n })
	for name, emu := range map[string]*sinchtest.Emulator{"eu": eu, "us": us} {
		for _, c := range emu.Contacts() {
			if !strings.HasPrefix(c.ExternalID, name+"-") {
				t.Errorf("project %s holds %s", name, c.ExternalID)
			}
		}
	}
	if got := httpGet(t, "http://"+d.addr+"/readyz"); !strings.Contains(got, "active for eu, us") {
		t.Errorf("/readyz: %q", got)
	}

	// rename changes a row's name and returns how long its project's
	// emulator took to show it.
	rename := func(id, name string, emu *sinchtest.Emulator) func() (time.Duration, bool) {
		t.Helper()
		start := time.Now()
		if err := h.store.DB().Exec(`UPDATE crm_contacts SET display_name = ?, updated_at = now() WHERE external_id = ?`, name, id).Error; err != nil {
			t.Fatal(err)
		}
		return func() (time.Duration, bool) {
			for _, c := range emu.Contacts() {
				if c.ExternalID == id && c.DisplayName == name {
					return time.Since(start), true
				}
			}
			return 0, false
		}
	}
	waitFor := func(what string, shown func() (time.Duration, bool)) time.Duration {
		t.Helper()
		var took time.Duration
		eventually(t, what, func() bool { d, ok := shown(); took = d; return ok })
		return took
	}
	calm := waitFor("a us edit reaches Sinch", rename("us-0041", "Calm", us))

	eu.SetFaults(sinchtest.Faults{ErrorRate: 1})
	callsBefore := eu.CallCounts()
	failing := func() int {
		n := 0
		for op, c := range eu.CallCounts() {
			n += c - callsBefore[op]
		}
		return n
	}
	euShown := rename("eu-0001", "Stormy", eu)
	// The us edit comes while eu's run is retrying its failed calls.
	eventually(t, "eu's run retries", func() bool { return failing() >= 2 })
	stormy := waitFor("a us edit reaches Sinch during eu's storm", rename("us-0042", "During the storm", us))
	if _, ok := euShown(); ok {
		t.Fatal("eu's edit went through the storm: it was no storm")
	}
	retried := failing()
	t.Logf("a us edit reached Sinch in %s without a storm on eu, in %s while eu's calls failed (%d of them)",
		calm.Round(time.Millisecond), stormy.Round(time.Millisecond), retried)

	// eu's run gives up after sinch.max_retry_time; its next one, after
	// the storm, puts the edit through.
	eu.SetFaults(sinchtest.Faults{})
	waitFor("eu's edit reaches Sinch once the storm is over", rename("eu-0001", "After the storm", eu))

	text := httpGet(t, "http://"+d.addr+"/metrics")
	for _, want := range []string{`project="eu"`, `project="us"`, `syncd_project_active{project="eu"} 1`, `syncd_project_active{project="us"} 1`} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
