package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/sinch/sinchtest"
	"github.com/syncd/syncd/state"
	contactsync "github.com/syncd/syncd/sync"
	"github.com/syncd/syncd/webhook"
)

const demoDatabase = "syncd_demo"

func (e *env) demoCommand() *cobra.Command {
	var database string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Try syncd: a diff, a sync, a second diff and a Sinch-side edit put back, against a local emulator",
		Long: `Run the whole cycle on built-in defaults: create the database syncd_demo on the
local PostgreSQL (SYNCD_DATABASE_URL names another server) and migrate it,
start the bundled Sinch emulator in process, load sample CRM rows and a
drifted Sinch project, print the diff, sync, and print a second diff that
has nothing left to do. Then register a webhook with the emulator, edit a
synced contact as a person would in the Sinch dashboard, and show syncd
receiving the signed CONTACT_UPDATE and the event run patching the contact
back (and the echo of that patch, known from the journal, costing no call).

Exit status: 0, 1 error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return e.demo(cmd.Context(), database)
		},
	}
	cmd.Flags().StringVar(&database, "database", demoDatabase, "name of the database the demo recreates")
	return cmd
}

func (e *env) demo(ctx context.Context, database string) error {
	cfg := defaultConfig()
	if v := e.getenv("SYNCD_DATABASE_URL"); v != "" {
		cfg.Database.URL = v
	}
	cfg.Log.Level = "warn"
	demoURL, err := recreateDatabase(ctx, cfg.Database.URL, database)
	if err != nil {
		return fmt.Errorf("database.url: %w", err)
	}
	cfg.Database.URL = demoURL

	// The emulator accepts a key made up for this run only.
	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	cfg.Sinch.ProjectID, cfg.Sinch.KeyID, cfg.Sinch.KeySecret = "demo-project", "demo-key", hex.EncodeToString(secret)
	_, _ = rand.Read(secret)
	cfg.Sinch.AppID, cfg.Webhook.Secret = "demo-app", hex.EncodeToString(secret)
	emu := sinchtest.New(sinchtest.Options{ProjectID: cfg.Sinch.ProjectID, KeyID: cfg.Sinch.KeyID, KeySecret: cfg.Sinch.KeySecret})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srvCtx, stopServer := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- serveUntilDone(srvCtx, &http.Server{Handler: emu, ReadHeaderTimeout: 10 * time.Second}, ln)
	}()
	defer func() { stopServer(); <-served }()
	defer emu.Close() // before the webhook it posts to stops
	cfg.Sinch.BaseURL = "http://" + ln.Addr().String()
	cfg.Sinch.TokenURL = cfg.Sinch.BaseURL + "/oauth2/token" // the default auth, oauth2, from the emulator

	d, err := e.openWith(ctx, cfg)
	if err != nil {
		return err
	}
	defer d.Close()
	if _, err := d.store.Migrate(ctx); err != nil {
		return err
	}
	records, contacts := demoData(time.Now())
	if err := crm.UpsertRecords(ctx, d.store.SQL(), cfg.CRM.Source, records); err != nil {
		return fmt.Errorf("load sample CRM rows: %w", err)
	}
	emu.Seed(contacts...)

	out := e.stdout
	fmt.Fprintf(out, "Database %s migrated; %d CRM rows loaded; emulator at %s holds %d contacts.\n\n",
		database, len(records), cfg.Sinch.BaseURL, len(contacts))

	rec := d.reconciler(false)
	fmt.Fprintln(out, "== syncd diff")
	plan, err := rec.Plan(ctx)
	if err != nil {
		return err
	}
	if err := planner.WriteText(out, plan, planner.ReportOptions{}); err != nil {
		return err
	}

	fmt.Fprintln(out, "\n== syncd backfill")
	rep, err := rec.Backfill(ctx, false)
	writeRunSummary(out, rep)
	if err != nil {
		return err
	}
	if err := backfillExit(rep, false); err != nil {
		return err
	}

	fmt.Fprintln(out, "\n== syncd diff")
	emu.ResetCalls()
	plan, err = rec.Plan(ctx)
	if err != nil {
		return err
	}
	if err := planner.WriteText(out, plan, planner.ReportOptions{}); err != nil {
		return err
	}
	total := len(emu.Contacts())
	fmt.Fprintf(out, "\nThe second diff read %d contacts with %d list calls and sent no writes (%d calls in all).\n",
		total, emu.Calls(sinchtest.OpList), totalCalls(emu.CallCounts()))
	if !plan.Empty() {
		return &exitCodeError{code: exitError, err: fmt.Errorf("the second diff still has %d operations", len(plan.Operations))}
	}
	return e.demoSinchEdit(ctx, d, emu, rec)
}

// demoSinchEdit shows a Sinch-side edit put back: a person renames a
// synced contact in the dashboard, the emulator posts the signed
// CONTACT_UPDATE to syncd's webhook as Sinch does, syncd verifies and
// stores it, and the event run that `syncd run` would start patches the
// contact back; the echo of that patch, known from the journal for
// syncd's own write, costs no call.
func (e *env) demoSinchEdit(ctx context.Context, d *deps, emu *sinchtest.Emulator, rec *contactsync.Reconciler) error {
	out := e.stdout
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	events := d.store.Events()
	stopWebhook := serveWebhookOn(ctx, d, ln, events, nil)
	defer stopWebhook()
	defer emu.Close() // no callback is left on its way to a stopped webhook
	rec.Events = events

	fmt.Fprintln(out, "\n== syncd webhooks register")
	target := "http://" + ln.Addr().String() + d.cfg.Webhook.Path
	hook, err := d.client.CreateWebhook(ctx, sinch.Webhook{AppID: d.cfg.Sinch.AppID, Target: target, TargetType: "HTTP",
		Secret: d.cfg.Webhook.Secret, Triggers: webhook.Triggers()})
	if err != nil {
		return fmt.Errorf("create the webhook: %w", err)
	}
	fmt.Fprintf(out, "created webhook %s of app %s: %s\n", hook.ID, hook.AppID, target)

	const ext, edited = "crm-0005", "Barbara (edited in Sinch)"
	contact, ok := demoContact(emu, ext)
	if !ok {
		return fmt.Errorf("no contact for %s", ext)
	}
	fmt.Fprintln(out, "\n== a person edits a contact in the Sinch dashboard")
	if _, err := emu.EditAsPerson(contact.ID, func(c *sinch.Contact) { c.DisplayName = edited }); err != nil {
		return err
	}
	fmt.Fprintf(out, "contact %s (%s): display_name %q -> %q; Sinch posts a signed CONTACT_UPDATE\n",
		contact.ID, ext, contact.DisplayName, edited)
	pending, err := demoDelivered(ctx, emu, events, d.cfg.Sinch.ProjectID)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "syncd verified the callback and stored the event: %d pending in syncd.webhook_events\n", pending)

	fmt.Fprintln(out, "\n== the event run (syncd run starts it within a second of the callback)")
	emu.ResetCalls()
	rep, err := rec.Run(ctx, state.RunEvents, false)
	writeRunSummary(out, rep)
	if err != nil {
		return err
	}
	now, _ := demoContact(emu, ext)
	writes := demoWrites(emu)
	fmt.Fprintf(out, "contact %s is %q again: read afresh and patched back with %d write (%d calls in all).\n",
		now.ID, now.DisplayName, writes, totalCalls(emu.CallCounts()))
	if now.DisplayName != contact.DisplayName || writes != 1 {
		return &exitCodeError{code: exitError, err: fmt.Errorf("the Sinch-side edit was not put back with one write")}
	}

	fmt.Fprintln(out, "\n== the echo: Sinch posts syncd's own patch back as a CONTACT_UPDATE")
	if _, err := demoDelivered(ctx, emu, events, d.cfg.Sinch.ProjectID); err != nil {
		return err
	}
	emu.ResetCalls()
	rep, err = rec.Run(ctx, state.RunEvents, false)
	writeRunSummary(out, rep)
	if err != nil {
		return err
	}
	calls := totalCalls(emu.CallCounts())
	fmt.Fprintf(out, "Its event run knew it from the journal for the echo of syncd's own patch: %d calls.\n", calls)
	if calls != 0 {
		return &exitCodeError{code: exitError, err: fmt.Errorf("the echo of syncd's own patch made %d calls", calls)}
	}
	return nil
}

// demoDelivered waits until the emulator has posted every callback it
// owes, each answered (hence stored) by the webhook, and returns how many
// events are pending.
func demoDelivered(ctx context.Context, emu *sinchtest.Emulator, events *state.Events, projectID string) (int, error) {
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := emu.Idle(wctx); err != nil {
		return 0, fmt.Errorf("the emulator's callbacks: %w (%+v)", err, emu.CallbackStats())
	}
	if st := emu.CallbackStats(); st.Failed > 0 {
		return 0, fmt.Errorf("%d callbacks failed", st.Failed)
	}
	q, err := events.Queue(ctx, projectID)
	return q.Pending, err
}

// demoWrites counts the calls that changed Sinch.
func demoWrites(emu *sinchtest.Emulator) int {
	c := emu.CallCounts()
	return c[sinchtest.OpCreate] + c[sinchtest.OpUpdate] + c[sinchtest.OpDelete] + c[sinchtest.OpMerge]
}

func demoContact(emu *sinchtest.Emulator, externalID string) (sinch.Contact, bool) {
	for _, c := range emu.Contacts() {
		if c.ExternalID == externalID {
			return c, true
		}
	}
	return sinch.Contact{}, false
}

func totalCalls(counts map[string]int) int {
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}

// recreateDatabase drops and creates the named database on the server of
// serverURL, and returns that database's URL.
func recreateDatabase(ctx context.Context, serverURL, name string) (string, error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", fmt.Errorf("not a URL")
	}
	admin := *u
	admin.Path = "/postgres"
	conn, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", admin.Redacted(), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
		return "", fmt.Errorf("drop database %s: %w", name, err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

// demoData is a small CRM and a Sinch project that drifted from it: most
// contacts mirror their rows, some differ, some are missing, one is
// duplicated, one sender was auto-created by Sinch, one row was deleted in
// the CRM and one contact has no row at all.
func demoData(now time.Time) ([]crm.Record, []sinch.Contact) {
	names := []string{
		"Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra", "Barbara Liskov",
		"Donald Knuth", "Margaret Hamilton", "Ken Thompson", "Frances Allen", "Dennis Ritchie",
		"Radia Perlman", "John McCarthy", "Leslie Lamport", "Hedy Lamarr", "Niklaus Wirth",
		"Karen Sparck Jones", "Tony Hoare", "Adele Goldberg", "Butler Lampson", "Shafi Goldwasser",
		"Robin Milner", "Sophie Wilson", "Vint Cerf", "Anita Borg", "Bjarne Stroustrup",
		"Jean Sammet", "Alan Kay",
	}
	str := func(s string) *string { return &s }
	var records []crm.Record
	var contacts []sinch.Contact
	for i, name := range names {
		n := i + 1
		ext := fmt.Sprintf("crm-%04d", n)
		phone := fmt.Sprintf("+4670%07d", 1000000+n)
		email := fmt.Sprintf("contact%d@example.com", n)
		lang := "EN_US"
		if n%3 == 0 {
			lang = "SV"
		}
		rec := crm.Record{
			ExternalID: ext, DisplayName: str(name), Email: str(email), Phone: str(phone),
			Language: str(lang), UpdatedAt: now,
		}
		if n == 8 {
			rec.Metadata = str(`{"tier": "gold", "since": 2019}`)
		}
		mirror := sinch.Contact{
			ExternalID: ext, DisplayName: name, Email: email, Language: lang, Metadata: "",
			ChannelIdentities: []sinch.ChannelIdentity{{Channel: "SMS", Identity: phone}, {Channel: "WHATSAPP", Identity: phone}},
		}
		if rec.Metadata != nil {
			mirror.Metadata = `{"since":2019,"tier":"gold"}` // the same JSON, spelt differently
		}
		switch {
		case n <= 20 && n != 3 && n != 10 && n != 4:
			contacts = append(contacts, mirror)
		case n == 3: // the e-mail changed in the CRM since the last sync
			mirror.Email = "old-address@example.com"
			contacts = append(contacts, mirror)
		case n == 10: // someone renamed the contact in Sinch
			mirror.DisplayName = "Dennis"
			contacts = append(contacts, mirror)
		case n == 4: // an earlier tool created it twice
			second := mirror
			second.ChannelIdentities = mirror.ChannelIdentities[:1]
			contacts = append(contacts, mirror, second)
		case n == 22: // Sinch auto-created this sender's contact
			contacts = append(contacts, sinch.Contact{
				ChannelIdentities: []sinch.ChannelIdentity{{Channel: "WHATSAPP", Identity: phone}},
				Language:          "EN_US",
			})
		case n == 27: // deleted in the CRM, still in Sinch
			rec.DeletedAt = &now
			contacts = append(contacts, mirror)
		}
		records = append(records, rec)
	}
	// A row the CRM got wrong is rejected; the rest still syncs.
	records = append(records, crm.Record{ExternalID: "crm-0028", DisplayName: str("Typo Tim"), Phone: str("+46 70 12"), UpdatedAt: now})
	// A contact whose CRM row is gone.
	contacts = append(contacts, sinch.Contact{
		ExternalID: "crm-0999", DisplayName: "Former Customer", Language: "EN_US",
		ChannelIdentities: []sinch.ChannelIdentity{{Channel: "SMS", Identity: "+46709999999"}},
	})
	return records, contacts
}
