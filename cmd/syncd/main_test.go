package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/crm/crmtest"
	"github.com/syncd/syncd/sinch/sinchtest"
)

func TestMain(m *testing.M) {
	// Tests that kill syncd run this binary as syncd itself.
	if os.Getenv("SYNCD_TEST_RUN_MAIN") == "1" {
		main()
	}
	goleak.VerifyTestMain(m)
}

// harness is a database of its own and an emulator, with the environment
// that points syncd at both.
type harness struct {
	t      *testing.T
	config string // a config file; tests append keys with setConfig
	env    map[string]string
	emu    *sinchtest.Emulator
	store  *crm.Store
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	dbURL := crmtest.NewDatabase(t)
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
	store, err := crm.Open(context.Background(), dbURL, zaptest.NewLogger(t))
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
	code = run(context.Background(), args, &out, &errOut, func(k string) string { return h.env[k] })
	return code, out.String(), errOut.String()
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
