package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"regexp"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/sinch/sinchtest"
)

// startEmulator runs `syncd emulator` in process with env and the extra
// flags, and returns its base URL once it listens.
func startEmulator(t *testing.T, env map[string]string, flags ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		args := append([]string{"emulator", "--listen", "127.0.0.1:0"}, flags...)
		done <- run(ctx, args, pw, io.Discard, func(k string) string { return env[k] })
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("emulator exited %d", code)
		}
	})
	line, err := bufio.NewReader(pr).ReadString('\n')
	go io.Copy(io.Discard, pr) // never block the emulator on its output
	if err != nil {
		t.Fatalf("emulator said %q: %v", line, err)
	}
	m := regexp.MustCompile(`listening on (http://\S+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no address in %q", line)
	}
	return m[1]
}

// TestEmulatorCommandCredentials: the emulator serves the project and key
// of the SYNCD_SINCH_* variables syncd reads; its flags override them.
func TestEmulatorCommandCredentials(t *testing.T) {
	env := map[string]string{
		"SYNCD_SINCH_PROJECT_ID": "env-project",
		"SYNCD_SINCH_KEY_ID":     "env-key",
		"SYNCD_SINCH_KEY_SECRET": "env-secret-value",
	}
	list := func(base, project, key string, auth string) error {
		c, err := sinch.NewClient(sinch.Config{
			BaseURL: base, TokenURL: base + "/oauth2/token", Auth: auth,
			ProjectID: project, KeyID: key, KeySecret: env["SYNCD_SINCH_KEY_SECRET"],
			MaxAttempts: 1, Logger: zaptest.NewLogger(t),
		})
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseIdleConnections()
		_, err = c.ListContacts(t.Context(), sinch.ListContactsRequest{})
		return err
	}
	fromEnv := startEmulator(t, env)
	for _, auth := range []string{sinch.AuthBasic, sinch.AuthOAuth2} {
		if err := list(fromEnv, "env-project", "env-key", auth); err != nil {
			t.Errorf("%s with the environment's credentials: %v", auth, err)
		}
	}
	if err := list(fromEnv, "demo-project", "env-key", sinch.AuthOAuth2); !sinch.IsAccessDenied(err) {
		t.Errorf("another project: %v, want a 403", err)
	}

	flagged := startEmulator(t, env, "--project-id", "flag-project", "--key-id", "flag-key")
	if err := list(flagged, "flag-project", "flag-key", sinch.AuthOAuth2); err != nil {
		t.Errorf("with the flags' credentials: %v", err)
	}
	if err := list(flagged, "env-project", "env-key", sinch.AuthOAuth2); !sinch.IsAccessDenied(err) {
		t.Errorf("the environment's key where flags override it: %v, want refused", err)
	}

	var stderr string
	code := run(t.Context(), []string{"emulator", "--listen", "127.0.0.1:0"}, io.Discard, writerFunc(func(p []byte) { stderr += string(p) }),
		func(k string) string { return map[string]string{"SYNCD_SINCH_KEY_ID": "k"}[k] })
	if code != exitError {
		t.Errorf("without a secret the emulator exited %d (%s), want 1", code, stderr)
	}
}

type writerFunc func([]byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }

// TestUnifiedContactIDNoFight: in a project with unified_contact_id_enabled,
// where Sinch adds MMS and RCS identities for every number on its own (and
// lists end with an empty page), a second full run writes nothing and the
// identities Sinch added survive every run, a phone change included.
func TestUnifiedContactIDNoFight(t *testing.T) {
	h := newHarness(t)
	h.emu.SetUnifiedContactID(true)
	h.emu.SetEmptyLastPage(true)
	h.migrate()
	rows := crmRows(25)
	h.load(rows)

	backfill := func(what string) {
		t.Helper()
		if code, out, errOut := h.run("backfill"); code != 0 {
			t.Fatalf("%s: backfill exited %d:\n%s%s", what, code, out, errOut)
		}
	}
	// hasAdded reports whether every contact holds the MMS and RCS
	// identities of each of its numbers.
	hasAdded := func(what string, numbers map[string][]string) {
		t.Helper()
		got := h.byExternalID()
		for ext, nums := range numbers {
			if len(got[ext]) != 1 {
				t.Fatalf("%s: %d contacts for %s, want 1", what, len(got[ext]), ext)
			}
			for _, n := range nums {
				for _, ch := range []string{"MMS", "RCS"} {
					if !slices.Contains(got[ext][0].ChannelIdentities, sinch.ChannelIdentity{Channel: ch, Identity: n}) {
						t.Errorf("%s: %s lost %s %s: %+v", what, ext, ch, n, got[ext][0].ChannelIdentities)
					}
				}
			}
		}
	}
	numbers := map[string][]string{}
	for _, r := range rows {
		numbers[r.ExternalID] = []string{(*r.Phone)[1:]}
	}

	backfill("first run")
	if n := h.emu.Calls(sinchtest.OpCreate); n != len(rows) {
		t.Errorf("first run: %d creates, want %d", n, len(rows))
	}
	hasAdded("first run", numbers)

	h.emu.ResetCalls()
	backfill("second run")
	if w := h.writes(); w != 0 {
		t.Errorf("second run made %d writes (%v), want none", w, h.emu.CallCounts())
	}
	hasAdded("second run", numbers)
	if code, out, _ := h.run("diff"); code != 0 {
		t.Errorf("diff after two runs exited %d:\n%s", code, out)
	}

	// A new number: one patch, after which Sinch adds its MMS and RCS too,
	// the old number's stay (syncd does not manage those channels), and the
	// next run is quiet again.
	rows[3].Phone = str("+46739990004")
	rows[3].UpdatedAt = time.Now()
	h.load(rows[3:4])
	numbers[rows[3].ExternalID] = append(numbers[rows[3].ExternalID], "46739990004")
	h.emu.ResetCalls()
	backfill("phone change")
	if c := h.emu.CallCounts(); h.writes() != 1 || c[sinchtest.OpUpdate] != 1 {
		t.Errorf("phone change: calls %v, want one update", c)
	}
	hasAdded("phone change", numbers)
	h.emu.ResetCalls()
	backfill("after the phone change")
	if w := h.writes(); w != 0 {
		t.Errorf("the run after the phone change made %d writes (%v), want none", w, h.emu.CallCounts())
	}
	hasAdded("after the phone change", numbers)
	if got := h.byExternalID()[rows[3].ExternalID][0]; !slices.Contains(got.ChannelIdentities, sinch.ChannelIdentity{Channel: "WHATSAPP", Identity: "46739990004"}) {
		t.Errorf("%s holds %+v, want its new WHATSAPP number", rows[3].ExternalID, got.ChannelIdentities)
	}

}

// The token endpoint's faults have flags of their own, apart from the
// contacts endpoints'.
func TestEmulatorCommandTokenFaults(t *testing.T) {
	env := map[string]string{"SYNCD_SINCH_KEY_SECRET": "secret-value"}
	base := startEmulator(t, env, "--token-error-rate", "1")
	for auth, wantErr := range map[string]bool{sinch.AuthOAuth2: true, sinch.AuthBasic: false} {
		c, err := sinch.NewClient(sinch.Config{BaseURL: base, TokenURL: base + "/oauth2/token", Auth: auth,
			ProjectID: "demo-project", KeyID: "demo-key", KeySecret: env["SYNCD_SINCH_KEY_SECRET"],
			MaxAttempts: 1, Logger: zaptest.NewLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.ListContacts(t.Context(), sinch.ListContactsRequest{})
		c.CloseIdleConnections()
		var ae *sinch.APIError
		switch {
		case wantErr && !(errors.As(err, &ae) && ae.Operation == sinch.OpToken && ae.HTTPStatus >= 500):
			t.Errorf("%s: %v, want the token endpoint's 5xx", auth, err)
		case !wantErr && err != nil:
			t.Errorf("%s: %v", auth, err)
		}
	}
}

// The emulator's app: SYNCD_SINCH_APP_ID (or --app-id) in the
// --processing-mode given, which config check --remote reads.
func TestEmulatorCommandApp(t *testing.T) {
	env := map[string]string{"SYNCD_SINCH_PROJECT_ID": "p", "SYNCD_SINCH_KEY_ID": "k", "SYNCD_SINCH_KEY_SECRET": "s3cret", "SYNCD_SINCH_APP_ID": "env-app"}
	for _, tc := range []struct {
		flags     []string
		app, mode string
	}{
		{nil, "env-app", sinch.ProcessingModeConversation},
		{[]string{"--app-id", "flag-app", "--processing-mode", "DISPATCH"}, "flag-app", sinch.ProcessingModeDispatch},
	} {
		base := startEmulator(t, env, tc.flags...)
		c, err := sinch.NewClient(sinch.Config{BaseURL: base, TokenURL: base + "/oauth2/token", ProjectID: "p", KeyID: "k", KeySecret: "s3cret", MaxAttempts: 1})
		if err != nil {
			t.Fatal(err)
		}
		app, err := c.GetApp(t.Context(), tc.app)
		c.CloseIdleConnections()
		if err != nil || app.ProcessingMode != tc.mode {
			t.Errorf("%v: app %+v, %v; want %s in %s", tc.flags, app, err, tc.app, tc.mode)
		}
	}
	if code := run(t.Context(), []string{"emulator", "--processing-mode", "LOUD"}, io.Discard, io.Discard, func(k string) string { return env[k] }); code != exitError {
		t.Errorf("an unknown mode: exit %d", code)
	}
}
