package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/syncd/syncd/sinch/sinchtest"
)

func (e *env) emulatorCommand() *cobra.Command {
	var listen, projectID, keyID string
	var faults sinchtest.Faults
	var callbacks sinchtest.CallbackFaults
	cmd := &cobra.Command{
		Use:   "emulator",
		Short: "Serve the bundled Sinch contacts emulator",
		Long: `Serve an in-memory emulator of the Sinch Conversation API contacts endpoints,
for trying syncd out and for tests. Point sinch.base_url (or SYNCD_SINCH_BASE_URL)
at it. The access key secret it accepts comes from SYNCD_SINCH_KEY_SECRET.
OAuth2 tokens are served at /oauth2/token. Webhooks created through its
Webhooks API get signed callbacks for every contact change; /_admin/ plays a
person editing (PATCH /_admin/contacts/{id}) or deleting
(DELETE /_admin/contacts/{id}) a contact, and Sinch auto-creating one
(POST /_admin/contacts).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			secret := e.getenv("SYNCD_SINCH_KEY_SECRET")
			if secret == "" {
				return errors.New("SYNCD_SINCH_KEY_SECRET must hold the key secret the emulator accepts")
			}
			emu := sinchtest.New(sinchtest.Options{ProjectID: projectID, KeyID: keyID, KeySecret: secret, Faults: faults})
			callbacks.Seed = faults.Seed
			emu.SetCallbackFaults(callbacks)
			defer emu.Close()
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("--listen: %w", err)
			}
			fmt.Fprintf(e.stdout, "Sinch emulator for project %s listening on http://%s\n", projectID, ln.Addr())
			return serveUntilDone(cmd.Context(), &http.Server{Handler: emu, ReadHeaderTimeout: 10 * time.Second}, ln)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:8788", "address to listen on")
	f.StringVar(&projectID, "project-id", "demo-project", "the project id the emulator serves")
	f.StringVar(&keyID, "key-id", "demo-key", "the access key id the emulator accepts")
	f.DurationVar(&faults.Latency, "latency", 0, "fixed latency added to every answer")
	f.DurationVar(&faults.LatencyJitter, "latency-jitter", 0, "random latency added on top, up to this much")
	f.Float64Var(&faults.RateLimitRPS, "rate-limit-rps", 0, "server-side rate limit answering 429 with Retry-After (0: none)")
	f.Float64Var(&faults.ErrorRate, "error-rate", 0, "fraction of requests answered with a 5xx")
	f.Float64Var(&faults.TooManyRequestsRate, "429-rate", 0, "fraction of requests answered with 429")
	f.Float64Var(&faults.DropBeforeRate, "drop-before-rate", 0, "fraction of connections dropped before a write is applied")
	f.Float64Var(&faults.DropAfterRate, "drop-after-rate", 0, "fraction of connections dropped after a write is applied")
	f.DurationVar(&faults.SlowLoris, "slow-loris", 0, "dribble each answer out over this long")
	f.Int64Var(&faults.Seed, "fault-seed", 1, "seed of the fault dice, for repeatable runs")
	f.DurationVar(&callbacks.Delay, "callback-delay", 0, "delay before each webhook callback")
	f.Float64Var(&callbacks.DuplicateRate, "callback-duplicate-rate", 0, "fraction of webhook callbacks posted twice")
	f.Float64Var(&callbacks.ReorderRate, "callback-reorder-rate", 0, "fraction of webhook callbacks overtaken by the next one")
	f.Float64Var(&callbacks.DropRate, "callback-drop-rate", 0, "fraction of webhook callbacks never posted")
	return cmd
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
