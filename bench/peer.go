package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/sinch/sinchtest"
	"github.com/syncd/syncd/state"
	contactsync "github.com/syncd/syncd/sync"
)

// The peer scenario puts syncd beside what a user would otherwise write: a
// script that creates the contacts one call at a time with Sinch's official
// Node SDK. All three contestants create the same contacts in an empty
// project, against an emulator with the same latency and Sinch's
// per-project limit of 800 requests/s:
//
//   - the Node script, on @sinch/sdk-core from npm, installed into a
//     temporary directory (or -peer-dir) and pointed at the emulator with
//     its conversationHostname and authHostname options (OAuth2, as the SDK
//     does by default);
//   - the same loop in Go, through sinch.Client one call at a time, which
//     separates the cost of calling sequentially from the cost of Node;
//   - syncd: a full run (what `syncd backfill` does) of the CRM rows on the
//     default configuration (sinch.Config's zero values, the reconciler's
//     concurrency the default sinch.max_concurrency).

// peerSDK is the npm package and version the script runs on. 1.4.0 is the
// release whose @sinch/conversation (1.4.0) the wire notes were checked
// against.
const peerSDK = "@sinch/sdk-core@1.4.0"

// peerScript creates PEER_N contacts, one awaited call after another, and
// prints how long that took.
const peerScript = `'use strict';
const { SinchClient } = require('@sinch/sdk-core');
const env = process.env;
const client = new SinchClient({
  projectId: env.PEER_PROJECT, keyId: env.PEER_KEY_ID, keySecret: env.PEER_KEY_SECRET,
  conversationHostname: env.PEER_BASE, authHostname: env.PEER_BASE,
});
const n = Number(env.PEER_N);
(async () => {
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const phone = '+4670' + String(i).padStart(7, '0');
    await client.conversation.contact.create({ contactCreateRequestBody: {
      channel_identities: [{ channel: 'SMS', identity: phone }, { channel: 'WHATSAPP', identity: phone }],
      language: 'EN_US', display_name: 'Peer ' + i, email: 'peer' + i + '@example.com',
      external_id: 'peer-' + String(i).padStart(4, '0'),
    } });
  }
  console.log(JSON.stringify({ ms: Number(process.hrtime.bigint() - start) / 1e6 }));
})().catch((e) => { console.error(e && e.message ? e.message : e); process.exit(1); });
`

// peerContact is contact i as every contestant creates it.
func peerContact(i int) (crm.Record, sinch.Contact) {
	ext := "peer-" + pad(i, 4)
	ph := "+4670" + pad(i, 7)
	name, email := "Peer "+strconv.Itoa(i), "peer"+strconv.Itoa(i)+"@example.com"
	rec := crm.Record{ExternalID: ext, DisplayName: &name, Email: &email, Phone: &ph, Language: str("EN_US"), UpdatedAt: loadedAt}
	c := sinch.Contact{
		ExternalID: ext, DisplayName: name, Email: email, Language: "EN_US",
		ChannelIdentities: []sinch.ChannelIdentity{{Channel: "SMS", Identity: ph}, {Channel: "WHATSAPP", Identity: ph}},
	}
	return rec, c
}

// peerRow is one line of the peer table.
type peerRow struct {
	who   string
	calls map[string]int
	wall  time.Duration
	note  string
}

func runPeer(ctx context.Context, cfg config) ([]peerRow, error) {
	n, latency := cfg.peerN, cfg.peerLatency
	logf("peer: %d creates at %s latency, server limit %d req/s", n, latency, sinch.ProjectRateLimit)
	// serve starts a fresh, empty emulator.
	serve := func() (*sinchtest.Emulator, string, func(), error) {
		emu := sinchtest.New(sinchtest.Options{Faults: sinchtest.Faults{Latency: latency, RateLimitRPS: sinch.ProjectRateLimit}})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, "", nil, err
		}
		srv := &http.Server{Handler: emu, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		return emu, "http://" + ln.Addr().String(), func() { srv.Close() }, nil
	}
	check := func(emu *sinchtest.Emulator, who string) error {
		if got := len(emu.Contacts()); got != n {
			return fmt.Errorf("%s left %d contacts, want %d", who, got, n)
		}
		if got := emu.Calls(sinchtest.OpCreate); got != n {
			return fmt.Errorf("%s made %d creates, want %d", who, got, n)
		}
		return nil
	}
	var rows []peerRow

	// The official SDK, if npm can install it.
	sdkRow, err := func() (peerRow, error) {
		emu, base, stop, err := serve()
		if err != nil {
			return peerRow{}, err
		}
		defer stop()
		ms, err := runNodePeer(ctx, cfg.peerDir, base, n)
		if err != nil {
			return peerRow{}, err
		}
		return peerRow{who: "Node, " + peerSDK + ", one call at a time", calls: emu.CallCounts(), wall: time.Duration(ms * float64(time.Millisecond))},
			check(emu, "the Node script")
	}()
	switch {
	case errors.Is(err, errNoNode):
		logf("peer: %v; comparing with the sequential Go loop only", err)
	case err != nil:
		return rows, err
	default:
		rows = append(rows, sdkRow)
	}

	// The same loop through sinch.Client.
	goRow, err := func() (peerRow, error) {
		emu, base, stop, err := serve()
		if err != nil {
			return peerRow{}, err
		}
		defer stop()
		c, err := sinch.NewClient(peerClientConfig(base))
		if err != nil {
			return peerRow{}, err
		}
		defer c.CloseIdleConnections()
		start := time.Now()
		for i := range n {
			_, contact := peerContact(i)
			if _, err := c.CreateContact(ctx, contact); err != nil {
				return peerRow{}, err
			}
		}
		return peerRow{who: "Go, sinch.Client, one call at a time", calls: emu.CallCounts(), wall: time.Since(start)}, check(emu, "the Go loop")
	}()
	if err != nil {
		return rows, err
	}
	rows = append(rows, goRow)

	// syncd on its defaults.
	syncdRow, err := func() (peerRow, error) {
		emu, base, stop, err := serve()
		if err != nil {
			return peerRow{}, err
		}
		defer stop()
		dbURL, drop, err := recreateDatabase(ctx, peerDatabase)
		if err != nil {
			return peerRow{}, err
		}
		if !cfg.keep {
			defer drop()
		}
		store, err := state.Open(ctx, dbURL, zap.NewNop())
		if err != nil {
			return peerRow{}, err
		}
		defer store.Close()
		recs := make([]crm.Record, n)
		for i := range recs {
			recs[i], _ = peerContact(i)
		}
		if err := crm.UpsertRecords(ctx, store.SQL(), "crm_contacts", recs); err != nil {
			return peerRow{}, err
		}
		client, err := sinch.NewClient(peerClientConfig(base))
		if err != nil {
			return peerRow{}, err
		}
		defer client.CloseIdleConnections()
		r := &contactsync.Reconciler{
			CRM: crm.New(store.SQL()), Links: store, Identities: store, Deferrals: store,
			Journal: store, Runs: store, Watermarks: store, Locks: store,
			Sinch: client, Logger: zap.NewNop(),
			ProjectID: sinchtest.DefaultProjectID, Source: crm.Source{Relation: "crm_contacts"}, BatchSize: 1000,
			Concurrency: sinch.DefaultMaxConcurrency, Options: planner.DefaultOptions(),
		}
		start := time.Now()
		rep, err := r.Run(ctx, state.RunFull, false)
		wall := time.Since(start)
		if err != nil {
			return peerRow{}, err
		}
		if rep.Applied.Create != n || rep.Failed != 0 {
			return peerRow{}, fmt.Errorf("syncd created %d, %d failed: %v", rep.Applied.Create, rep.Failed, rep.Errors)
		}
		limit, rtt := client.InFlightLimit()
		return peerRow{who: "syncd backfill, default configuration", calls: emu.CallCounts(), wall: wall,
			note: fmt.Sprintf("at the end of the run the client allowed %d requests in flight, from a smoothed round trip of %.1f ms", limit, float64(rtt)/float64(time.Millisecond))}, check(emu, "syncd")
	}()
	if err != nil {
		return rows, err
	}
	rows = append(rows, syncdRow)
	return rows, nil
}

// peerDatabase is the peer scenario's own database, so that it never
// drops the one of a size run.
const peerDatabase = "syncd_bench_peer"

// peerClientConfig is sinch.Config's defaults pointed at the emulator.
func peerClientConfig(base string) sinch.Config {
	return sinch.Config{
		BaseURL: base, TokenURL: base + "/oauth2/token",
		ProjectID: sinchtest.DefaultProjectID, KeyID: sinchtest.DefaultKeyID, KeySecret: sinchtest.DefaultKeySecret,
	}
}

// errNoNode means the SDK script cannot run here: no node or npm, or the
// SDK would not install.
var errNoNode = errors.New("the official Node SDK is not available")

// runNodePeer installs the SDK (unless dir holds it already) and runs the
// script against base; it returns the script's own timing in milliseconds.
func runNodePeer(ctx context.Context, dir, base string, n int) (float64, error) {
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			return 0, fmt.Errorf("%w: %s is not installed", errNoNode, tool)
		}
	}
	if dir == "" {
		tmp, err := os.MkdirTemp("", "syncd-bench-peer-")
		if err != nil {
			return 0, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@sinch", "sdk-core")); err != nil {
		logf("peer: npm install %s into %s", peerSDK, dir)
		if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"private": true}`+"\n"), 0o644); err != nil {
			return 0, err
		}
		install := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund", "--loglevel=error", peerSDK)
		install.Dir, install.Stdout, install.Stderr = dir, os.Stderr, os.Stderr
		if err := install.Run(); err != nil {
			return 0, fmt.Errorf("%w: npm install %s: %v", errNoNode, peerSDK, err)
		}
	}
	script := filepath.Join(dir, "peer.js")
	if err := os.WriteFile(script, []byte(peerScript), 0o644); err != nil {
		return 0, err
	}
	logf("peer: the Node script")
	cmd := exec.CommandContext(ctx, "node", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"PEER_BASE="+base, "PEER_N="+strconv.Itoa(n), "PEER_PROJECT="+sinchtest.DefaultProjectID,
		"PEER_KEY_ID="+sinchtest.DefaultKeyID, "PEER_KEY_SECRET="+sinchtest.DefaultKeySecret)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("the Node script: %w", err)
	}
	var res struct {
		MS float64 `json:"ms"`
	}
	if err := json.NewDecoder(strings.NewReader(out.String())).Decode(&res); err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("the Node script said %q: %w", out.String(), err)
	}
	return res.MS, nil
}

func printPeer(w io.Writer, cfg config, rows []peerRow) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\nPeer: %d new contacts into an empty project, %s of server latency, server limit %d req/s:\n\n", cfg.peerN, cfg.peerLatency, sinch.ProjectRateLimit)
	fmt.Fprintln(w, "| client | calls | wall | contacts/s | speed-up over the first row |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|")
	for _, r := range rows {
		calls := fmt.Sprintf("%d create, %d list, %d token", r.calls[sinchtest.OpCreate], r.calls[sinchtest.OpList], r.calls[sinchtest.OpToken])
		fmt.Fprintf(w, "| %s | %s | %s | %.0f | %.1f× |\n", r.who, calls, fmtDur(r.wall),
			float64(cfg.peerN)/r.wall.Seconds(), rows[0].wall.Seconds()/r.wall.Seconds())
	}
	for _, r := range rows {
		if r.note != "" {
			fmt.Fprintf(w, "\n- %s: %s\n", r.who, r.note)
		}
	}
}
