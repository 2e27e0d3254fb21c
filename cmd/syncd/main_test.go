package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/syncd/syncd/sinch/sinchtest"
	"github.com/syncd/syncd/state"
	"github.com/syncd/syncd/state/statetest"
)

func TestMain(m *testing.M) {
	// Tests that kill syncd run this binary as syncd itself.
	if os.Getenv("SYNCD_TEST_RUN_MAIN") == "1" {
		main()
	}
	// A host's own /etc/syncd/config.yaml (an installed package) stays out
	// of the tests; those of the search put a file here.
	systemConfig = filepath.Join(os.TempDir(), "syncd-test-no-system-config", "config.yaml")
	goleak.VerifyTestMain(m)
}

// harness is a database of its own and an emulator, with the environment
// that points syncd at both.
type harness struct {
	t      *testing.T
	config string // a config file; tests append keys with setConfig
	env    map[string]string
	emu    *sinchtest.Emulator
	store  *state.Store
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	dbURL := statetest.NewDatabase(t)
	emu, srv := sinchtest.Start(t, sinchtest.Options{ProjectID: "p1", KeyID: "key", KeySecret: "s3cret-value"})
	h := &harness{t: t, emu: emu, env: map[string]string{
		"SYNCD_DATABASE_URL":     dbURL,
		"SYNCD_SINCH_PROJECT_ID": "p1",
		"SYNCD_SINCH_BASE_URL":   srv.URL,
		"SYNCD_SINCH_TOKEN_URL":  srv.URL + "/oauth2/token",
		"SYNCD_SINCH_KEY_ID":     "key",
		"SYNCD_SINCH_KEY_SECRET": "s3cret-value",
		"SYNCD_LOG_LEVEL":        "warn",
	}}
	store, err := state.Open(context.Background(), dbURL, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	h.store = store
	h.setConfig("sinch:\n  rate_limit_rps: 1000\n")
	return h
}

// setConfig writes the config file the harness passes with --config.
func (h *harness) setConfig(yaml string) {
	h.t.Helper()
	h.config = filepath.Join(h.t.TempDir(), "config.yaml")
	if err := os.WriteFile(h.config, []byte(yaml), 0o600); err != nil {
		h.t.Fatal(err)
	}
}

// run executes a syncd command line in process, as the binary would.
func (h *harness) run(args ...string) (code int, stdout, stderr string) {
	h.t.Helper()
	var out, errOut bytes.Buffer
	args = append([]string{"--config", h.config}, args...)
	e := &env{stdout: &out, stderr: &errOut, getenv: func(k string) string { return h.env[k] }, environ: h.environ}
	code = execute(context.Background(), e, args)
	return code, out.String(), errOut.String()
}

// environ is the harness's environment as os.Environ lists it.
func (h *harness) environ() []string {
	var out []string
	for k, v := range h.env {
		out = append(out, k+"="+v)
	}
	return out
}

// migrate applies the migrations through the CLI.
func (h *harness) migrate() {
	h.t.Helper()
	if code, out, errOut := h.run("migrate"); code != 0 {
		h.t.Fatalf("migrate exited %d: %s%s", code, out, errOut)
	}
}

// writes counts the calls that change Sinch.
func (h *harness) writes() int {
	c := h.emu.CallCounts()
	return c[sinchtest.OpCreate] + c[sinchtest.OpUpdate] + c[sinchtest.OpDelete] + c[sinchtest.OpMerge]
}

// Every command's help ends with its exit statuses, after the flags.
func TestEveryCommandListsItsExitStatuses(t *testing.T) {
	e := &env{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}
	var walk func(c *cobra.Command)
	n := 0
	walk = func(c *cobra.Command) {
		if !c.Hidden {
			n++
			var out bytes.Buffer
			args := append(strings.Fields(c.CommandPath())[1:], "--help")
			if code := run(context.Background(), args, &out, &out, func(string) string { return "" }); code != 0 {
				t.Errorf("%v exited %d", args, code)
			}
			help := strings.TrimSpace(out.String())
			i := strings.LastIndex(help, "\nExit status: ")
			flags := strings.LastIndex(help, "Flags:")
			if i < 0 || i < flags || strings.Count(help, "Exit status:") != 1 {
				t.Errorf("%q: its help does not end with its exit statuses:\n%s", c.CommandPath(), help)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(e.rootCommand())
	if n < 15 {
		t.Errorf("walked %d commands, want every one (completion's and help included)", n)
	}
}

func TestCommandLine(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		args []string
		code int
		want string // in stdout+stderr
		not  string
	}{
		{[]string{"config", "chek"}, exitError, `did you mean "syncd config check"?`, ""},
		{[]string{"stauts"}, exitError, `did you mean "syncd status"?`, ""},
		{[]string{"config"}, 0, "check", "unknown"},
		{[]string{"apply"}, exitError, "syncd apply needs the plan file that syncd diff --out saved: syncd apply PLAN.json", ""},
		{[]string{"backfill", "--help"}, 0, "130 interrupted", ""},
		{[]string{"__complete", "diff", "--format", ""}, 0, "text\njson\nmarkdown\n", ""},
		{[]string{"__complete", "status", "--format", "j"}, 0, "json\n", "markdown"},
		{[]string{"__complete", "diff", "--only", "create,d"}, 0, "create,delete\n", "create,create"},
		{[]string{"__complete", "diff", "--only", "re"}, 0, "rejected\n", ""},
		{[]string{"__complete", "status", "--project", ""}, 0, "default\n", ""},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errOut := h.run(tc.args...)
			if code != tc.code || !strings.Contains(out+errOut, tc.want) || (tc.not != "" && strings.Contains(out+errOut, tc.not)) {
				t.Errorf("exit %d (want %d):\n%s%s", code, tc.code, out, errOut)
			}
		})
	}
}

// twoProjects makes the harness's configuration two projects reading one
// table, crm_contacts with a region column: eu on the harness's emulator,
// with the unprefixed variables, and us on an emulator of its own, with
// its own variables. The database must be migrated. It returns us's
// emulator.
func (h *harness) twoProjects(extra string) *sinchtest.Emulator {
	h.t.Helper()
	us, srv := sinchtest.Start(h.t, sinchtest.Options{ProjectID: "p2", KeyID: "key2", KeySecret: "s3cret-us"})
	h.env["SYNCD_US_SINCH_PROJECT_ID"] = "p2"
	h.env["SYNCD_US_SINCH_KEY_ID"] = "key2"
	h.env["SYNCD_US_SINCH_KEY_SECRET"] = "s3cret-us"
	if err := h.store.DB().Exec(`ALTER TABLE crm_contacts ADD COLUMN region text`).Error; err != nil {
		h.t.Fatal(err)
	}
	h.setConfig(`sinch:
  rate_limit_rps: 1000
sync:
  max_delete_fraction: 1
projects:
  - name: eu
    crm:
      filter: region = 'eu'
  - name: us
    sinch:
      base_url: ` + srv.URL + `
      token_url: ` + srv.URL + `/oauth2/token
    crm:
      filter: region = 'us'
` + extra)
	return us
}

// setRegion puts the rows with the given external_ids in region.
func (h *harness) setRegion(region string, ids ...string) {
	h.t.Helper()
	if err := h.store.DB().Exec(`UPDATE crm_contacts SET region = ? WHERE external_id IN ?`, region, ids).Error; err != nil {
		h.t.Fatal(err)
	}
}

// externalIDs lists the external_ids of an emulator's contacts, sorted.
func externalIDs(emu *sinchtest.Emulator) []string {
	var out []string
	for _, c := range emu.Contacts() {
		out = append(out, c.ExternalID)
	}
	slices.Sort(out)
	return out
}

// --project completes from the configuration's projects.
func TestProjectFlagCompletes(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	h.twoProjects("")
	for _, tc := range []struct{ prefix, want string }{{"", "eu\nus\n"}, {"u", "us\n"}, {"x", ":4\n"}} {
		if code, out, _ := h.run("__complete", "diff", "--project", tc.prefix); code != 0 || !strings.HasPrefix(out, tc.want) {
			t.Errorf("completing --project %q exited %d:\n%s", tc.prefix, code, out)
		}
	}
}
