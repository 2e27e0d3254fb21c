package main

import (
	"os"
	"strings"
	"syscall"
	"testing"
)

// rewriteConfig replaces the content of the harness's config file in
// place, as an operator edits /etc/syncd/config.yaml before a reload.
func (h *harness) rewriteConfig(yaml string) {
	h.t.Helper()
	if err := os.WriteFile(h.config, []byte(yaml), 0o600); err != nil {
		h.t.Fatal(err)
	}
}

// reloadConfig is a configuration with the given entries of a projects:
// list and top-level extra.
func reloadConfig(extra string, entries ...string) string {
	return "sinch:\n  rate_limit_rps: 1000\nhttp:\n  listen: 127.0.0.1:0\nshutdown_timeout: 10s\n" +
		"schedule:\n  incremental: '@every 1h'\n  full: '@every 1h'\n" + extra + "projects:\n" + strings.Join(entries, "")
}

// On SIGHUP syncd run applies what can change live (a project added or
// removed, a schedule, the log level) and refuses, in one log line naming
// them, the changes that take a restart; a broken file is refused whole.
func TestReloadAppliesWhatCanChangeLive(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	us := h.twoProjects("")
	delete(h.env, "SYNCD_LOG_LEVEL") // the file's log.level, which a reload changes
	euEntry := "  - name: eu\n    crm:\n      filter: region = 'eu'\n"
	euEvery1s := "  - name: eu\n    crm:\n      filter: region = 'eu'\n      batch_size: 50\n    schedule:\n      incremental: '@every 1s'\n"
	usEntry := func() string {
		cfg, err := os.ReadFile(h.config) // twoProjects' us entry: its emulator's URLs
		if err != nil {
			t.Fatal(err)
		}
		_, rest, _ := strings.Cut(string(cfg), "  - name: us\n")
		return "  - name: us\n" + rest
	}()
	h.setConfig(reloadConfig("log:\n  level: warn\n", euEntry))
	h.load(crmRows(2))
	h.setRegion("eu", "crm-0001")
	h.setRegion("us", "crm-0002")
	hup := make(chan os.Signal, 1)
	d := h.startDaemonWith(hup)
	eventually(t, "eu's first run", func() bool { return len(h.emu.Contacts()) == 1 })

	h.rewriteConfig(reloadConfig("log:\n  level: debug\n", euEvery1s, usEntry))
	hup <- syscall.SIGHUP
	eventually(t, "us, added, syncs its record", func() bool { return len(us.Contacts()) == 1 })
	rows := crmRows(2)
	rows[0].DisplayName = str("Edited After Reload")
	h.load(rows[:1])
	h.setRegion("eu", "crm-0001")
	eventually(t, "eu's new schedule syncs the edit", func() bool {
		c := h.byExternalID()["crm-0001"]
		return len(c) == 1 && c[0].DisplayName == "Edited After Reload"
	})
	log := d.stderr.String()
	for _, want := range []string{`"msg":"reloaded the configuration"`, `"projects[us] added"`, `"projects[eu].schedule.incremental"`, `"log.level"`,
		`"msg":"reload: these changes take a restart (systemctl restart syncd); their running values stay","refused":["projects[eu].crm.batch_size"]`} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %s:\n%s", want, log)
		}
	}
	if !strings.Contains(log, `"level":"debug"`) {
		t.Errorf("log.level: debug was not applied:\n%s", log)
	}

	h.rewriteConfig(reloadConfig("log:\n  level: debug\n", usEntry))
	hup <- syscall.SIGHUP
	eventually(t, "eu is let go", func() bool { return httpGet(t, "http://"+d.addr+"/readyz") == "ok (active for us)\n" })

	h.rewriteConfig("sinch: [\n")
	hup <- syscall.SIGHUP
	eventually(t, "a broken file is refused", func() bool { return strings.Contains(d.stderr.String(), `"msg":"reload refused`) })
	if got := httpGet(t, "http://"+d.addr+"/readyz"); got != "ok (active for us)\n" {
		t.Errorf("after a refused reload /readyz = %q", got)
	}
	if code := d.stop(t); code != 0 {
		t.Errorf("exit %d", code)
	}
}
