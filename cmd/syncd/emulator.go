package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/sinch/sinchtest"
)

func (e *env) emulatorCommand() *cobra.Command {
	var listen, projectID, keyID, appID, mode string
	var opts sinchtest.Options
	faults, tokenFaults := &opts.Faults, &opts.TokenFaults
	var callbacks sinchtest.CallbackFaults
	cmd := &cobra.Command{
		Use:   "emulator",
		Short: "Serve the bundled Sinch contacts emulator",
		Long: `Serve an in-memory emulator of the Sinch Conversation API contacts endpoints,
for trying syncd out and for tests. Point sinch.base_url (or SYNCD_SINCH_BASE_URL)
at it, and sinch.token_url (SYNCD_SINCH_TOKEN_URL) at its /oauth2/token.

It serves the project and accepts the access key of the same environment
variables syncd reads, SYNCD_SINCH_PROJECT_ID, SYNCD_SINCH_KEY_ID and
SYNCD_SINCH_KEY_SECRET, so that one set of exports serves both; --project-id
and --key-id override the first two.

It knows one Conversation API app, --app-id (or SYNCD_SINCH_APP_ID), in the
--processing-mode given (CONVERSATION, or DISPATCH, the mode Sinch gives an
app created since April 2025, for trying syncd config check --remote).

Webhooks created through its Webhooks API get signed callbacks for every
contact change; /_admin/ plays a person editing (PATCH /_admin/contacts/{id})
or deleting (DELETE /_admin/contacts/{id}) a contact, and Sinch auto-creating
one (POST /_admin/contacts).

Exit status: 0 stopped by SIGINT or SIGTERM, 1 error (no key secret, the
address in use).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.ProjectID = flagOrEnv(cmd, "project-id", projectID, e.getenv("SYNCD_SINCH_PROJECT_ID"))
			opts.KeyID = flagOrEnv(cmd, "key-id", keyID, e.getenv("SYNCD_SINCH_KEY_ID"))
			opts.KeySecret = e.getenv("SYNCD_SINCH_KEY_SECRET")
			if opts.KeySecret == "" {
				return errors.New("SYNCD_SINCH_KEY_SECRET must hold the key secret the emulator accepts")
			}
			tokenFaults.Seed = faults.Seed
			if mode != sinch.ProcessingModeConversation && mode != sinch.ProcessingModeDispatch {
				return fmt.Errorf("--processing-mode: %q is not one of CONVERSATION, DISPATCH", mode)
			}
			emu := sinchtest.New(opts)
			emu.PutApp(sinch.App{ID: flagOrEnv(cmd, "app-id", appID, e.getenv("SYNCD_SINCH_APP_ID")), DisplayName: "syncd emulator", ProcessingMode: mode})
			callbacks.Seed = faults.Seed
			emu.SetCallbackFaults(callbacks)
			defer emu.Close()
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("--listen: %w", err)
			}
			fmt.Fprintf(e.stdout, "Sinch emulator for project %s, access key %s, listening on http://%s (OAuth2 tokens at http://%[3]s/oauth2/token)\n",
				opts.ProjectID, opts.KeyID, ln.Addr())
			return serveUntilDone(cmd.Context(), &http.Server{Handler: emu, ReadHeaderTimeout: 10 * time.Second}, ln)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:8788", "address to listen on")
	f.StringVar(&projectID, "project-id", "demo-project", "the project id the emulator serves; overrides SYNCD_SINCH_PROJECT_ID")
	f.StringVar(&keyID, "key-id", "demo-key", "the access key id the emulator accepts; overrides SYNCD_SINCH_KEY_ID")
	f.StringVar(&appID, "app-id", "demo-app", "the id of the app the emulator knows; overrides SYNCD_SINCH_APP_ID")
	f.StringVar(&mode, "processing-mode", sinch.ProcessingModeConversation, "the app's processing mode: CONVERSATION or DISPATCH")
	f.BoolVar(&opts.UnifiedContactID, "unified-contact-id", false, "play the project setting unified_contact_id_enabled: add SMS, MMS and RCS identities for every phone number")
	f.BoolVar(&opts.EmptyLastPage, "empty-last-page", false, "end every list with a page token whose page is empty")
	f.BoolVar(&opts.ShiftingPages, "shifting-pages", false, "page tokens are positions, as Sinch's are: a contact removed from a page already served shifts the rest of the list")
	f.BoolVar(&faults.RetryInfo, "retry-info", false, "send the wait of 429s as a google.rpc.RetryInfo detail instead of Retry-After")
	f.DurationVar(&faults.Latency, "latency", 0, "fixed latency added to every answer")
	f.DurationVar(&faults.LatencyJitter, "latency-jitter", 0, "random latency added on top, up to this much")
	f.Float64Var(&faults.RateLimitRPS, "rate-limit-rps", 0, "server-side rate limit answering 429 with Retry-After (0: none)")
	f.Float64Var(&faults.ErrorRate, "error-rate", 0, "fraction of requests answered with a 5xx")
	f.Float64Var(&faults.TooManyRequestsRate, "429-rate", 0, "fraction of requests answered with 429")
	f.Float64Var(&faults.DropBeforeRate, "drop-before-rate", 0, "fraction of connections dropped before a write is applied")
	f.Float64Var(&faults.DropAfterRate, "drop-after-rate", 0, "fraction of connections dropped after a write is applied")
	f.DurationVar(&faults.SlowLoris, "slow-loris", 0, "dribble each answer out over this long")
	f.Int64Var(&faults.Seed, "fault-seed", 1, "seed of the fault dice, for repeatable runs")
	f.DurationVar(&opts.TokenTTL, "token-ttl", sinchtest.DefaultTokenTTL, "lifetime of the access tokens (JWTs) of /oauth2/token")
	f.DurationVar(&tokenFaults.Latency, "token-latency", 0, "latency added to every answer of /oauth2/token")
	f.Float64Var(&tokenFaults.ErrorRate, "token-error-rate", 0, "fraction of token requests answered with a 5xx")
	f.Float64Var(&tokenFaults.TooManyRequestsRate, "token-429-rate", 0, "fraction of token requests answered with 429")
	f.Float64Var(&tokenFaults.RateLimitRPS, "token-rate-limit-rps", 0, "token requests per second past a burst of 30 (0: Sinch's 10; negative: no limit)")
	f.DurationVar(&callbacks.Delay, "callback-delay", 0, "delay before each webhook callback")
	f.Float64Var(&callbacks.DuplicateRate, "callback-duplicate-rate", 0, "fraction of webhook callbacks posted twice")
	f.Float64Var(&callbacks.ReorderRate, "callback-reorder-rate", 0, "fraction of webhook callbacks overtaken by the next one")
	f.Float64Var(&callbacks.DropRate, "callback-drop-rate", 0, "fraction of webhook callbacks never posted")
	return cmd
}

// flagOrEnv is the flag's value when it was given, else the environment's,
// else the flag's default.
func flagOrEnv(cmd *cobra.Command, name, flag, env string) string {
	if cmd.Flags().Changed(name) || env == "" {
		return flag
	}
	return env
}

// serveUntilDone serves until ctx ends, then shuts the server down.
func serveUntilDone(ctx context.Context, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	<-errc
	return nil
}
