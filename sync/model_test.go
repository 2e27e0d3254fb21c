package sync_test

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"iter"
	"maps"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	stdsync "sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, for the CRM's own writes
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"pgregory.net/rapid"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/sinch/sinchtest"
	"github.com/syncd/syncd/state"
	"github.com/syncd/syncd/state/statetest"
	contactsync "github.com/syncd/syncd/sync"
)

// Defaults of the model test, small enough for CI under -race on two cores.
// -rapid.checks and -rapid.steps (or RAPID_CHECKS, RAPID_STEPS) override
// them for a longer run, e.g. -rapid.checks=1000 -rapid.steps=60.
const (
	modelChecks = 30
	// modelCallTimeout bounds one call to the emulator, which answers in
	// microseconds; it is what a runner taking over must wait out.
	modelCallTimeout = 3 * time.Second
	// modelLockCheck is how often a run re-checks its project lock.
	modelLockCheck = time.Second
	modelSteps     = 25
)

// lockLossSlack bounds how long a run whose lock was terminated may take to
// notice before the test looks at what it sends next.
const lockLossSlack = 2 * time.Second

var (
	modelNames  = []string{"Ada", "Grace", "Alan", "Edsger"}
	modelEmails = []string{"", "ada@example.com", "grace@example.org"}
)

// managedChannels are the channels a record's phone becomes an identity on
// (the default sync.phone_channels); every other channel is unmanaged.
var managedChannels = planner.DefaultOptions().PhoneChannels

func modelOptions() planner.Options {
	opts := planner.DefaultOptions()
	opts.ExternalIDPrefix = "crm-"
	opts.AllowMassDelete = true // a handful of contacts trips any fraction
	return opts
}

// TestModel drives the reconciler through its public surface (Reconciler.Run
// and Plan, a real PostgreSQL store, the CRM table, the Sinch emulator) with
// random sequences of CRM edits, hand edits in Sinch and runs of both kinds,
// some of them interrupted, and checks after every run what must hold
// whatever the reconciler's internals: no live record gains a second
// contact, no contact syncd does not own is written, no merge joins two live
// records' people, no delete removes a live record's contact, unmanaged
// identities survive. At the end two full runs converge: the second plans
// and writes nothing, and Sinch holds exactly one matching contact per live
// record and nothing else of syncd's.
//
// The model is deliberately small: records are always valid (a name, an
// e-mail, a phone from a pool of five, so records share phones), and a
// contact "stands for" a record (owner) when syncd created or adopted it for
// that record; a rename moves that to the new external_id. Hand edits in
// Sinch never change whom a contact stands for.
func TestModel(t *testing.T) {
	modelDefaults(t, map[string]int{"rapid.checks": modelChecks, "rapid.steps": modelSteps})
	env := newModelEnv(t)
	check := 0
	rapid.Check(t, func(rt *rapid.T) {
		check++
		h := env.start(rt, fmt.Sprintf("model-%d", check))
		defer h.close()
		for range rapid.IntRange(1, 4).Draw(rt, "records") {
			h.crmInsert(rt)
		}
		for range rapid.IntRange(0, 2).Draw(rt, "auto-created") {
			h.sinchAutoCreate(rt)
		}
		rt.Repeat(map[string]func(*rapid.T){
			"crm insert":                 h.crmInsert,
			"crm edit":                   h.crmEdit,
			"crm tombstone":              h.crmTombstone,
			"crm hard delete":            h.crmHardDelete,
			"crm rename":                 h.crmRename,
			"sinch edit field":           h.sinchEditField,
			"sinch rekey":                h.sinchRekey,
			"sinch delete":               h.sinchDelete,
			"sinch merge":                h.sinchMerge,
			"sinch auto-create":          h.sinchAutoCreate,
			"sinch add messenger":        h.sinchAddMessenger,
			"run full":                   func(rt *rapid.T) { h.run(rt, state.RunFull, stopAt{}) },
			"run full during edits":      h.runFullDuringEdits,
			"run incremental":            func(rt *rapid.T) { h.run(rt, state.RunIncremental, stopAt{}) },
			"run interrupted":            h.runInterrupted,
			"run loses its lock":         h.runLosesLock,
			"crm insert sharing a phone": h.crmInsertShared,
		})
		h.converge(rt)
	})
}

// modelDefaults lowers rapid's defaults for this test, which drives a real
// database and emulator, unless the command line or the environment set them.
func modelDefaults(t *testing.T, values map[string]int) {
	t.Helper()
	given := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for name, v := range values {
		env := strings.ToUpper(strings.ReplaceAll(name, ".", "_"))
		if _, set := os.LookupEnv(env); set || given[name] {
			continue
		}
		f := flag.Lookup(name)
		if f == nil {
			t.Fatalf("rapid has no flag %s", name)
		}
		old := f.Value.String()
		if err := f.Value.Set(strconv.Itoa(v)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.Value.Set(old) })
	}
}

// openStore is statetest.OpenStore with a quiet logger: every run takes and
// releases the lock, and a failing sequence is read from the test log.
func openStore(t *testing.T, dbURL string, log *zap.Logger) *state.Store {
	t.Helper()
	s, err := state.Open(context.Background(), dbURL, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func openSQL(t *testing.T, dbURL string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// modelEnv is what the checks share: one database, two stores on it (a
// second for the runner that takes over a lost lock), and the CRM's own
// connection.
type modelEnv struct {
	store, standby *state.Store
	db             *sql.DB
	log            *zap.Logger
}

func newModelEnv(t *testing.T) *modelEnv {
	t.Helper()
	dbURL := statetest.NewDatabase(t)
	log := zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))
	return &modelEnv{store: openStore(t, dbURL, log), standby: openStore(t, dbURL, log), db: openSQL(t, dbURL), log: log}
}

// modelRecord is a CRM row as the model knows it.
type modelRecord struct {
	name, email, phone string
	deleted            bool
}

// modelHarness is one check: a fresh project, emulator and CRM table.
type modelHarness struct {
	env     *modelEnv
	project string
	emu     *sinchtest.Emulator
	srv     *httptest.Server
	client  *sinch.Client // syncd's
	console *sinch.Client // a person at the Sinch console

	records map[string]*modelRecord // by external_id; hard deletes are gone
	// owner is the record each contact stands for, by contact id: learned
	// when syncd created or adopted a contact for it, moved by renames.
	owner map[string]string
	// rekey marks contacts whose record was renamed since the last full
	// run, with the same phone: they must be re-keyed, not replaced.
	rekey  map[string]bool
	nextID int
	runs   int
	// during, when set, is done once the next full run has listed every
	// contact, before it writes: edits made while a full run goes on.
	during func()
}

func (env *modelEnv) start(rt rapid.TB, project string) *modelHarness {
	if _, err := env.db.ExecContext(context.Background(), "DELETE FROM crm_contacts"); err != nil {
		rt.Fatal(err)
	}
	emu := sinchtest.New(sinchtest.Options{ProjectID: project, KeyID: "k", KeySecret: "model-secret"})
	srv := httptest.NewServer(emu)
	client := func() *sinch.Client {
		cfg := emu.ClientConfig(srv.URL)
		cfg.RateLimitRPS = 10000
		cfg.MinBackoff, cfg.MaxBackoff = time.Millisecond, 10*time.Millisecond
		cfg.Timeout = modelCallTimeout
		c, err := sinch.NewClient(cfg)
		if err != nil {
			rt.Fatal(err)
		}
		return c
	}
	return &modelHarness{
		env: env, project: project, emu: emu, srv: srv, client: client(), console: client(),
		records: map[string]*modelRecord{}, owner: map[string]string{}, rekey: map[string]bool{},
	}
}

func (h *modelHarness) close() {
	h.client.CloseIdleConnections()
	h.console.CloseIdleConnections()
	h.srv.Close()
}

func (h *modelHarness) live(ext string) bool {
	r, ok := h.records[ext]
	return ok && !r.deleted
}

func (h *modelHarness) liveIDs() []string {
	var ids []string
	for ext := range h.records {
		if h.live(ext) {
			ids = append(ids, ext)
		}
	}
	slices.Sort(ids)
	return ids
}

func (h *modelHarness) exec(rt rapid.TB, query string, args ...any) {
	if _, err := h.env.db.ExecContext(context.Background(), query, args...); err != nil {
		rt.Fatalf("CRM: %s: %v", query, err)
	}
}

// msisdn is a phone as Sinch stores it on a phone channel.
func msisdn(phone string) string { return strings.TrimPrefix(phone, "+") }

// holdsPhone reports whether c has phone on a managed channel.
func holdsPhone(c sinch.Contact, phone string) bool {
	return slices.ContainsFunc(c.ChannelIdentities, func(id sinch.ChannelIdentity) bool {
		return slices.Contains(managedChannels, id.Channel) && msisdn(id.Identity) == msisdn(phone)
	})
}

// claimants are the live records whose identities c holds: a contact
// without external_id may be adopted or merged only by the one record that
// claims it, and is left alone when two do.
func (h *modelHarness) claimants(c sinch.Contact) []string {
	var out []string
	for _, ext := range h.liveIDs() {
		if holdsPhone(c, h.records[ext].phone) {
			out = append(out, ext)
		}
	}
	return out
}

// --- CRM actions ---

func (h *modelHarness) insert(rt *rapid.T, phone string) {
	ext := fmt.Sprintf("crm-%d", h.nextID)
	h.nextID++
	h.put(rt, ext, &modelRecord{
		name:  rapid.SampledFrom(modelNames).Draw(rt, "name"),
		email: rapid.SampledFrom(modelEmails).Draw(rt, "email"),
		phone: phone,
	})
}

func (h *modelHarness) put(rt rapid.TB, ext string, r *modelRecord) {
	h.exec(rt, "INSERT INTO crm_contacts (external_id, display_name, email, phone) VALUES ($1, $2, $3, $4)",
		ext, r.name, r.email, r.phone)
	h.records[ext] = r
	rt.Logf("CRM: insert %s %q %q %s", ext, r.name, r.email, r.phone)
}

func (h *modelHarness) crmInsert(rt *rapid.T) {
	h.insert(rt, rapid.SampledFrom(phonePool).Draw(rt, "phone"))
}

// crmInsertShared inserts a record with the phone of a live one: two
// people, one number (a family's landline), two contacts.
func (h *modelHarness) crmInsertShared(rt *rapid.T) {
	ids := h.liveIDs()
	if len(ids) == 0 {
		rt.Skip("no live record")
	}
	other := rapid.SampledFrom(ids).Draw(rt, "shares-with")
	h.insert(rt, h.records[other].phone)
}

func (h *modelHarness) pickLive(rt *rapid.T) string {
	ids := h.liveIDs()
	if len(ids) == 0 {
		rt.Skip("no live record")
	}
	return rapid.SampledFrom(ids).Draw(rt, "record")
}

func (h *modelHarness) crmEdit(rt *rapid.T) {
	ext := h.pickLive(rt)
	r := h.records[ext]
	switch field := rapid.SampledFrom([]string{"display_name", "email", "phone"}).Draw(rt, "field"); field {
	case "display_name":
		r.name = rapid.SampledFrom(modelNames).Draw(rt, "name")
		h.exec(rt, "UPDATE crm_contacts SET display_name = $1 WHERE external_id = $2", r.name, ext)
		rt.Logf("CRM: %s display_name = %q", ext, r.name)
	case "email":
		r.email = rapid.SampledFrom(modelEmails).Draw(rt, "email")
		h.exec(rt, "UPDATE crm_contacts SET email = $1 WHERE external_id = $2", r.email, ext)
		rt.Logf("CRM: %s email = %q", ext, r.email)
	case "phone":
		r.phone = rapid.SampledFrom(phonePool).Draw(rt, "phone")
		h.exec(rt, "UPDATE crm_contacts SET phone = $1 WHERE external_id = $2", r.phone, ext)
		rt.Logf("CRM: %s phone = %s", ext, r.phone)
		h.forgetRekeys(ext) // a new number: identities no longer show it is the same person
	}
}

func (h *modelHarness) crmTombstone(rt *rapid.T) {
	ext := h.pickLive(rt)
	h.exec(rt, "UPDATE crm_contacts SET deleted_at = now() WHERE external_id = $1", ext)
	h.records[ext].deleted = true
	rt.Logf("CRM: tombstone %s", ext)
}

func (h *modelHarness) crmHardDelete(rt *rapid.T) {
	ids := slices.Sorted(maps.Keys(h.records))
	if len(ids) == 0 {
		rt.Skip("no record")
	}
	ext := rapid.SampledFrom(ids).Draw(rt, "record")
	h.exec(rt, "DELETE FROM crm_contacts WHERE external_id = $1", ext)
	delete(h.records, ext)
	rt.Logf("CRM: hard delete %s", ext)
}

// crmRename changes a live record's external_id and nothing else. Its
// contact keeps standing for it; when that contact is unambiguously the
// same person (it alone stands for the record, carries its old id and
// holds its phone, which no other live record has), it must be re-keyed.
func (h *modelHarness) crmRename(rt *rapid.T) {
	h.rename(rt, h.pickLive(rt))
}

func (h *modelHarness) rename(rt rapid.TB, old string) {
	ext := fmt.Sprintf("crm-%d", h.nextID)
	h.nextID++
	h.exec(rt, "UPDATE crm_contacts SET external_id = $1 WHERE external_id = $2", ext, old)
	r := h.records[old]
	delete(h.records, old)
	h.records[ext] = r

	contacts := h.contactsByID()
	var mine []string
	for id, who := range h.owner {
		if who == old {
			mine = append(mine, id)
		}
	}
	shared := false
	for _, other := range h.liveIDs() {
		shared = shared || (other != ext && h.records[other].phone == r.phone)
	}
	for _, id := range mine {
		c := contacts[id]
		if len(mine) == 1 && c.ExternalID == old && holdsPhone(c, r.phone) && !shared {
			h.owner[id] = ext
			h.rekey[id] = true
		} else {
			h.forget(id)
		}
	}
	rt.Logf("CRM: rename %s to %s (contacts %v)", old, ext, mine)
}

// forgetRekeys drops the re-key expectation of ext's contacts.
func (h *modelHarness) forgetRekeys(ext string) {
	for id := range h.rekey {
		if h.owner[id] == ext {
			h.forget(id)
		}
	}
}

// forget drops what the model knows of a contact.
func (h *modelHarness) forget(id string) {
	delete(h.owner, id)
	delete(h.rekey, id)
}

// --- Sinch actions: a person at the console, or Sinch on its own ---

func (h *modelHarness) contactsByID() map[string]sinch.Contact {
	out := map[string]sinch.Contact{}
	for _, c := range h.emu.Contacts() {
		out[c.ID] = c
	}
	return out
}

// pickContact draws one of the contacts keep accepts. They are drawn in
// the order of what they hold, not of their ids: ids are made of the clock,
// and a replayed sequence must draw the same contacts for rapid to shrink it.
func (h *modelHarness) pickContact(rt *rapid.T, keep func(sinch.Contact) bool) sinch.Contact {
	var cs []sinch.Contact
	for _, c := range h.emu.Contacts() {
		if keep == nil || keep(c) {
			cs = append(cs, c)
		}
	}
	if len(cs) == 0 {
		rt.Skip("no such contact")
	}
	key := func(c sinch.Contact) string {
		return fmt.Sprint(c.ExternalID, h.owner[c.ID], c.ChannelIdentities, c.DisplayName, c.Email)
	}
	slices.SortStableFunc(cs, func(a, b sinch.Contact) int { return strings.Compare(key(a), key(b)) })
	return rapid.SampledFrom(cs).Draw(rt, "contact")
}

func (h *modelHarness) sinchEditField(rt *rapid.T) {
	c := h.pickContact(rt, func(c sinch.Contact) bool { return strings.HasPrefix(c.ExternalID, "crm-") })
	switch field := rapid.SampledFrom([]string{"display_name", "email", "sms"}).Draw(rt, "field"); field {
	case "display_name":
		c.DisplayName = "Edited by hand"
	case "email":
		c.Email = "hand@example.net"
	case "sms":
		phone := rapid.SampledFrom(phonePool).Draw(rt, "phone")
		i := slices.IndexFunc(c.ChannelIdentities, func(id sinch.ChannelIdentity) bool { return id.Channel == "SMS" })
		if i < 0 {
			c.ChannelIdentities = append(c.ChannelIdentities, sinch.ChannelIdentity{Channel: "SMS"})
			i = len(c.ChannelIdentities) - 1
		}
		c.ChannelIdentities[i].Identity = phone
		if h.rekey[c.ID] {
			h.forget(c.ID) // its identities no longer show who it is
		}
	}
	h.emu.Seed(c)
	rt.Logf("Sinch: hand edit of %s (%s): %+v", c.ID, c.ExternalID, c)
}

// sinchRekey sets the external_id of a contact that stands for a live
// record to another live record's.
func (h *modelHarness) sinchRekey(rt *rapid.T) {
	c := h.pickContact(rt, func(c sinch.Contact) bool { return h.live(h.owner[c.ID]) && c.ExternalID == h.owner[c.ID] })
	others := slices.DeleteFunc(h.liveIDs(), func(ext string) bool { return ext == c.ExternalID })
	if len(others) == 0 {
		rt.Skip("no other live record")
	}
	h.setExternalID(rt, c, rapid.SampledFrom(others).Draw(rt, "to"))
}

func (h *modelHarness) setExternalID(rt rapid.TB, c sinch.Contact, to string) {
	rt.Logf("Sinch: hand edit sets external_id of %s from %s to %s", c.ID, c.ExternalID, to)
	c.ExternalID = to
	h.emu.Seed(c)
}

func (h *modelHarness) sinchDelete(rt *rapid.T) {
	c := h.pickContact(rt, nil)
	if err := h.console.DeleteContact(context.Background(), c.ID); err != nil {
		rt.Fatal(err)
	}
	h.forget(c.ID)
	rt.Logf("Sinch: hand delete of %s (%s)", c.ID, c.ExternalID)
}

func (h *modelHarness) sinchMerge(rt *rapid.T) {
	dest := h.pickContact(rt, nil)
	src := h.pickContact(rt, func(c sinch.Contact) bool { return c.ID != dest.ID })
	if _, err := h.console.MergeContacts(context.Background(), dest.ID, src.ID); err != nil {
		rt.Fatal(err)
	}
	h.forget(src.ID)
	if h.rekey[dest.ID] {
		h.forget(dest.ID) // it may have gained identities
	}
	rt.Logf("Sinch: hand merge of %s (%s) into %s (%s)", src.ID, src.ExternalID, dest.ID, dest.ExternalID)
}

// sinchAutoCreate adds a contact Sinch made on its own (no external_id) or
// that another system owns, holding a record's phone, sometimes the phones
// of two records on two channels.
func (h *modelHarness) sinchAutoCreate(rt *rapid.T) {
	phones := slices.Clone(phonePool)
	for _, ext := range h.liveIDs() {
		phones = append(phones, h.records[ext].phone, h.records[ext].phone)
	}
	ext := rapid.SampledFrom([]string{"", "", "", "shop-1", "crm-x1"}).Draw(rt, "external_id")
	first := rapid.SampledFrom(managedChannels).Draw(rt, "channel")
	c := sinch.Contact{ExternalID: ext, ChannelIdentities: []sinch.ChannelIdentity{
		{Channel: first, Identity: rapid.SampledFrom(phones).Draw(rt, "phone")},
	}}
	if rapid.Bool().Draw(rt, "second-channel") {
		second := slices.DeleteFunc(slices.Clone(managedChannels), func(ch string) bool { return ch == first })[0]
		phone := rapid.SampledFrom(phones).Draw(rt, "second-phone")
		c.ChannelIdentities = append(c.ChannelIdentities, sinch.ChannelIdentity{Channel: second, Identity: phone})
	}
	if rapid.Bool().Draw(rt, "messenger") {
		c.ChannelIdentities = append(c.ChannelIdentities, sinch.ChannelIdentity{Channel: "MESSENGER", Identity: "m-auto", AppID: "APP"})
	}
	c = h.emu.Seed(c)[0]
	rt.Logf("Sinch: auto-created %s (%q) %v", c.ID, c.ExternalID, c.ChannelIdentities)
}

// sinchAddMessenger gives a contact an identity on a channel syncd does not
// manage, as Sinch does when the person writes on Messenger.
func (h *modelHarness) sinchAddMessenger(rt *rapid.T) {
	c := h.pickContact(rt, func(c sinch.Contact) bool {
		return !slices.ContainsFunc(c.ChannelIdentities, func(id sinch.ChannelIdentity) bool { return id.Channel == "MESSENGER" })
	})
	c.ChannelIdentities = append(c.ChannelIdentities, sinch.ChannelIdentity{Channel: "MESSENGER", Identity: "m-" + c.ID, AppID: "APP"})
	h.emu.Seed(c)
	rt.Logf("Sinch: %s (%s) gains a MESSENGER identity", c.ID, c.ExternalID)
}

// --- runs ---

// stopAt says how a run is cut short: its context cancelled after the
// cancelAt-th Sinch call (that call's answer lost when loseAnswer), or its
// project lock taken away after its loseLockAt-th read.
type stopAt struct {
	cancelAt   int
	loseAnswer bool
	loseLockAt int
}

// runFullDuringEdits makes a full run during which the CRM and Sinch
// change: once it has listed every contact, before it decides and writes,
// records are edited, renamed, tombstoned, deleted and inserted, and
// contacts edited, deleted and auto-created by Sinch. Whatever it then
// writes must still keep every invariant.
func (h *modelHarness) runFullDuringEdits(rt *rapid.T) {
	n := rapid.IntRange(1, 3).Draw(rt, "edits during the full run")
	edits := []func(*rapid.T){h.crmInsert, h.crmEdit, h.crmRename, h.crmTombstone, h.crmHardDelete,
		h.sinchEditField, h.sinchDelete, h.sinchAutoCreate}
	h.runWith(rt, state.RunFull, stopAt{}, func() {
		for range n {
			rapid.SampledFrom(edits).Draw(rt, "edit during the full run")(rt)
		}
	})
}

func (h *modelHarness) runInterrupted(rt *rapid.T) {
	kind := rapid.SampledFrom([]state.RunKind{state.RunFull, state.RunIncremental}).Draw(rt, "kind")
	h.run(rt, kind, stopAt{
		cancelAt:   rapid.IntRange(1, 12).Draw(rt, "cancel-after-calls"),
		loseAnswer: rapid.Bool().Draw(rt, "answer-lost"),
	})
}

func (h *modelHarness) runLosesLock(rt *rapid.T) {
	kind := rapid.SampledFrom([]state.RunKind{state.RunFull, state.RunIncremental}).Draw(rt, "kind")
	h.run(rt, kind, stopAt{loseLockAt: rapid.IntRange(1, 3).Draw(rt, "lose-lock-after-reads")})
}

func (h *modelHarness) reconciler(store *state.Store, api contactsync.SinchAPI) *contactsync.Reconciler {
	return &contactsync.Reconciler{
		CRM: crm.New(store.SQL()), Links: store, Identities: store, Deferrals: store,
		Journal: store, Runs: store, Watermarks: store, Locks: store,
		Sinch: api, Logger: h.env.log, ProjectID: h.project,
		Source: crm.Source{Relation: "crm_contacts"}, BatchSize: 100, Concurrency: 4, Options: modelOptions(),
		// A runner that took over waits 2 × LockCheck + the call timeout
		// (modelCallTimeout) before it writes: short values keep a lost lock
		// from costing the test its default twelve seconds. Not shorter: a
		// check that no answer confirms within 2 × LockCheck loses the lock,
		// and a loaded two-core machine has been seen to take over 500 ms.
		LockCheck: modelLockCheck, LockGrace: 2*modelLockCheck + modelCallTimeout,
	}
}

// doubtRekeys drops the expectation that a renamed record's contact is
// re-keyed where, by the time a run sees it, the evidence no longer singles
// it out: another contact a gone record left holds the same phone, or
// another live record without a contact of its own does. Which is the
// renamed record's own is then a guess, and syncd does not guess.
func (h *modelHarness) doubtRekeys(contacts []sinch.Contact) {
	standsFor := make(map[string]bool)
	for id, who := range h.owner {
		if _, ok := h.rekey[id]; !ok {
			standsFor[who] = true
		}
	}
	for id := range h.rekey {
		owner := h.owner[id]
		r, ok := h.records[owner]
		if !ok {
			continue
		}
		doubt := false
		var mine sinch.Contact
		for _, c := range contacts {
			if c.ID != id && holdsPhone(c, r.phone) && strings.HasPrefix(c.ExternalID, "crm-") && !h.live(c.ExternalID) {
				doubt = true
			}
			if c.ID == id {
				mine = c
			}
		}
		for _, other := range h.liveIDs() {
			// Another record without a contact that shares the phone, or
			// whose phone a hand edit gave the contact, could as well be
			// the one renamed.
			if other != owner && !standsFor[other] && (h.records[other].phone == r.phone || holdsPhone(mine, h.records[other].phone)) {
				doubt = true
			}
		}
		if doubt {
			h.forget(id)
		}
	}
}

// run performs one run and checks what every run must leave true.
func (h *modelHarness) run(rt rapid.TB, kind state.RunKind, stop stopAt) (contactsync.Report, *watchedSinch) {
	return h.runWith(rt, kind, stop, nil)
}

// runWith is run; with during set, the run pauses once it has listed
// every contact (a full run) while during makes its edits, on the test's
// goroutine (rapid draws nowhere else).
func (h *modelHarness) runWith(rt rapid.TB, kind state.RunKind, stop stopAt, during func()) (contactsync.Report, *watchedSinch) {
	before := h.emu.Contacts()
	h.doubtRekeys(before)
	h.runs++
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := h.watch(before, stop, cancel)
	type result struct {
		rep contactsync.Report
		err error
	}
	done := make(chan result, 1)
	paused, resume := make(chan struct{}), make(chan struct{})
	if during != nil {
		h.during = func() { close(paused); <-resume }
	}
	go func() {
		rep, err := h.reconciler(h.env.store, w).Run(ctx, kind, false)
		done <- result{rep, err}
	}()
	if during != nil {
		func() {
			var resumed stdsync.Once
			defer func() {
				// An edit that skips (or fails) leaves by a panic: the
				// run is let go on and waited for first, so that no run
				// outlives its action.
				if p := recover(); p != nil {
					resumed.Do(func() { close(resume) })
					<-done
					h.during = nil
					panic(p)
				}
			}()
			select {
			case <-paused:
				during()
			case res := <-done:
				done <- res
			}
			resumed.Do(func() { close(resume) })
		}()
	}
	res := <-done
	h.during = nil
	rep, err := res.rep, res.err
	after := h.emu.Contacts()
	rt.Logf("run %d (%s, %+v): outcome %s, %s, %d writes, err %v %v", h.runs, kind, stop, rep.Outcome, rep.Plan.Summary(), w.writeCount(), err, rep.Errors)

	var problems []string
	problems = append(problems, w.problems()...)
	interrupted := stop != stopAt{}
	switch {
	// The run's own error is logged above: it names run ids, which differ
	// from one replay to the next.
	case stop.loseLockAt > 0 && w.lockTaken() && (err == nil || rep.Outcome == state.OutcomeSucceeded):
		problems = append(problems, fmt.Sprintf("the run lost its project lock yet ended %s", rep.Outcome))
	case !interrupted && (err != nil || rep.Outcome != state.OutcomeSucceeded):
		problems = append(problems, fmt.Sprintf("an undisturbed run ended %s (%d errors)", rep.Outcome, len(rep.Errors)))
	}
	problems = append(problems, h.checkRun(before, after)...)
	if len(problems) > 0 {
		rt.Logf("before run %d: %s\nafter run %d:  %s", h.runs, h.describe(before), h.runs, h.describe(after))
		fail(rt, fmt.Sprintf("after run %d (%s)", h.runs, kind), problems)
	}
	h.learn(after)
	if kind == state.RunFull && !interrupted && during == nil {
		clear(h.rekey) // done by now, or reported above
	}
	return rep, w
}

// contactIDs matches the ids the emulator makes (ULIDs).
var contactIDs = regexp.MustCompile(`\b[0-9A-HJKMNP-TV-Z]{26}\b`)

// fail logs the problems as they are, then fails with them sorted and
// without contact ids: ids are made of the clock, and rapid shrinks a
// failing sequence only if its replay fails with the same message.
func fail(rt rapid.TB, when string, problems []string) {
	rt.Logf("%s:\n  %s", when, strings.Join(problems, "\n  "))
	stable := make([]string, len(problems))
	for i, p := range problems {
		stable[i] = contactIDs.ReplaceAllString(p, "C")
	}
	slices.Sort(stable)
	rt.Fatalf("%s:\n  %s", contactIDs.ReplaceAllString(when, "C"), strings.Join(stable, "\n  "))
}

// checkRun compares the contacts before and after a run.
func (h *modelHarness) checkRun(before, after []sinch.Contact) []string {
	var problems []string
	count := func(cs []sinch.Contact) map[string]int {
		n := map[string]int{}
		for _, c := range cs {
			n[c.ExternalID]++
		}
		return n
	}
	nb, na := count(before), count(after)
	for _, ext := range h.liveIDs() {
		if na[ext] > max(1, nb[ext]) {
			problems = append(problems, fmt.Sprintf("%s has %d contacts, %d before the run", ext, na[ext], nb[ext]))
		}
	}
	afterByID := map[string]sinch.Contact{}
	for _, c := range after {
		afterByID[c.ID] = c
	}
	for _, c := range before {
		now, ok := afterByID[c.ID]
		if !ok {
			continue
		}
		for _, id := range c.ChannelIdentities {
			if !slices.Contains(managedChannels, id.Channel) && !slices.Contains(now.ChannelIdentities, id) {
				problems = append(problems, fmt.Sprintf("contact %s lost its unmanaged identity %s:%s", c.ID, id.Channel, id.Identity))
			}
		}
	}
	return problems
}

// learn records whom new and adopted contacts stand for, and forgets
// contacts that are gone: a contact carrying a live record's external_id
// stands for it when no other contact does and syncd has linked it, and so
// does a linked contact without external_id, a merge's destination. (A
// create whose answer was lost is not linked until a later run finds it;
// until then syncd, like the model, cannot know whose it is.)
func (h *modelHarness) learn(after []sinch.Contact) {
	links, err := h.env.store.Links(context.Background(), h.project)
	if err != nil {
		panic(fmt.Sprintf("read links: %v", err))
	}
	exists := map[string]bool{}
	byID := map[string]sinch.Contact{}
	carriers := map[string][]string{}
	for _, c := range after {
		exists[c.ID] = true
		byID[c.ID] = c
		carriers[c.ExternalID] = append(carriers[c.ExternalID], c.ID)
	}
	for id := range h.owner {
		if !exists[id] {
			h.forget(id)
		}
	}
	owned := map[string]bool{}
	for _, ext := range h.owner {
		owned[ext] = true
	}
	for _, ext := range h.liveIDs() {
		if cs := carriers[ext]; !owned[ext] && len(cs) == 1 && h.owner[cs[0]] == "" && links[ext].ContactID == cs[0] {
			h.owner[cs[0]] = ext
			owned[ext] = true
		}
	}
	// An adoption cut short after its merge and before its patch leaves
	// the merge's destination linked and still without an external_id: it
	// stands for the record it was merged for (the merge cannot be undone),
	// as the link says.
	for _, ext := range h.liveIDs() {
		id := links[ext].ContactID
		if c, ok := byID[id]; !owned[ext] && ok && c.ExternalID == "" && h.owner[id] == "" {
			h.owner[id] = ext
		}
	}
}

func (h *modelHarness) describe(cs []sinch.Contact) string {
	var parts []string
	for _, c := range cs {
		var ids []string
		for _, id := range c.ChannelIdentities {
			ids = append(ids, id.Channel+":"+id.Identity)
		}
		parts = append(parts, fmt.Sprintf("%s{ext %q, owner %q, %q %q %s}", c.ID, c.ExternalID, h.owner[c.ID],
			c.DisplayName, c.Email, strings.Join(ids, ",")))
	}
	return strings.Join(parts, "; ")
}

// converge runs two full runs in a row: the second must plan and write
// nothing, and Sinch must hold what the CRM says.
func (h *modelHarness) converge(rt rapid.TB) {
	h.run(rt, state.RunFull, stopAt{})
	rep, w := h.run(rt, state.RunFull, stopAt{})
	if !rep.Plan.Empty() || w.writeCount() > 0 {
		rt.Logf("operations: %+v", rep.Plan.Operations)
		fail(rt, "convergence", []string{fmt.Sprintf("a second full run in a row planned %s and wrote %d times", rep.Plan.Summary(), w.writeCount())})
	}
	plan, err := h.reconciler(h.env.store, h.client).Plan(context.Background())
	if err != nil {
		rt.Fatal(err)
	}
	if !plan.Empty() {
		rt.Logf("operations: %+v", plan.Operations)
		fail(rt, "convergence", []string{"Plan after two full runs: " + plan.Summary().String()})
	}

	var problems []string
	contacts := h.emu.Contacts()
	byExt := map[string][]sinch.Contact{}
	for _, c := range contacts {
		byExt[c.ExternalID] = append(byExt[c.ExternalID], c)
	}
	for _, ext := range h.liveIDs() {
		r := h.records[ext]
		cs := byExt[ext]
		if len(cs) != 1 {
			problems = append(problems, fmt.Sprintf("%s has %d contacts", ext, len(cs)))
			continue
		}
		c := cs[0]
		var managed []string
		for _, id := range c.ChannelIdentities {
			if slices.Contains(managedChannels, id.Channel) {
				managed = append(managed, id.Channel+":"+id.Identity)
			}
		}
		slices.Sort(managed)
		var want []string
		for _, ch := range managedChannels {
			want = append(want, ch+":"+msisdn(r.phone))
		}
		slices.Sort(want)
		if c.DisplayName != r.name || c.Email != r.email || !slices.Equal(managed, want) {
			problems = append(problems, fmt.Sprintf("%s's contact %s is %q %q %v, the CRM says %q %q %s",
				ext, c.ID, c.DisplayName, c.Email, managed, r.name, r.email, r.phone))
		}
		// A contact may pass from a record that is gone to a live one
		// holding its phone: to syncd a record hard-deleted and another
		// inserted with its phone look as a rename does, and the rule is to
		// re-key when the identities show the same person (the checks
		// above hold it to the live record's fields).
		if who := h.owner[c.ID]; who != "" && who != ext && h.live(who) {
			problems = append(problems, fmt.Sprintf("contact %s stands for %s but now carries %s", c.ID, who, ext))
		}
		for id, who := range h.owner {
			if who == ext && id != c.ID {
				problems = append(problems, fmt.Sprintf("%s is split: its contact %s lives on beside %s", ext, id, c.ID))
			}
		}
	}
	for ext, cs := range byExt {
		// A CRM source that returns no rows never deletes anything.
		if strings.HasPrefix(ext, "crm-") && !h.live(ext) && len(h.records) > 0 {
			problems = append(problems, fmt.Sprintf("%d contacts still carry %s, which is not a live record", len(cs), ext))
		}
	}
	if len(problems) > 0 {
		rt.Logf("contacts after convergence: %s", h.describe(contacts))
		fail(rt, "after convergence", problems)
	}
}

// --- the Sinch calls of a run ---

// watchedSinch is syncd's Sinch client as one run sees it. It checks every
// write against the contacts as the run found them and the model, counts
// calls, and cuts the run short as its stopAt says. Methods it does not
// override reach Sinch unchecked.
type watchedSinch struct {
	contactsync.SinchAPI
	h      *modelHarness
	before map[string]sinch.Contact
	stop   stopAt
	cancel context.CancelFunc

	mu       stdsync.Mutex
	calls    int
	reads    int
	writes   int
	lost     bool // the lock was taken away
	problem  []string
	takeover []string // what the runner that took over reported
}

func (h *modelHarness) watch(before []sinch.Contact, stop stopAt, cancel context.CancelFunc) *watchedSinch {
	w := &watchedSinch{SinchAPI: h.client, h: h, before: map[string]sinch.Contact{}, stop: stop, cancel: cancel}
	for _, c := range before {
		w.before[c.ID] = c
	}
	return w
}

func (w *watchedSinch) report(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.problem = append(w.problem, fmt.Sprintf(format, args...))
}

func (w *watchedSinch) problems() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append(slices.Clone(w.problem), w.takeover...)
}

func (w *watchedSinch) writeCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writes
}

func (w *watchedSinch) lockTaken() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lost
}

// begin counts a call and returns its number.
func (w *watchedSinch) begin() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	return w.calls
}

// end applies the stop after call n: the context is cancelled, and with
// loseAnswer the caller is told nothing of what Sinch did.
func (w *watchedSinch) end(n int) (lostAnswer bool) {
	if w.stop.cancelAt != n {
		return false
	}
	w.cancel()
	return w.stop.loseAnswer
}

// read counts a read and takes the lock away after the loseLockAt-th.
func (w *watchedSinch) read(ctx context.Context) {
	w.mu.Lock()
	w.reads++
	take := w.stop.loseLockAt == w.reads
	w.mu.Unlock()
	if take {
		w.takeLock(ctx)
	}
}

// write checks a write to the given contacts before it is sent.
func (w *watchedSinch) write(ctx context.Context, what string, ids ...string) {
	w.mu.Lock()
	w.writes++
	lost := w.lost
	w.mu.Unlock()
	if lost && ctx.Err() == nil {
		w.report("%s sent after the run lost its project lock", what)
	}
	for _, id := range ids {
		c, existed := w.before[id]
		switch {
		case !existed, strings.HasPrefix(c.ExternalID, "crm-"):
			// created by this run, or owned by syncd
		case c.ExternalID != "":
			w.report("%s writes contact %s of another system (external_id %q)", what, id, c.ExternalID)
		case w.h.live(w.h.owner[id]):
			// a live record's already: a merge's destination, linked
		default:
			if who := w.h.claimants(c); len(who) != 1 {
				w.report("%s writes contact %s, which has no external_id and holds identities of %d live records %v: no full run may adopt it",
					what, id, len(who), who)
			}
		}
	}
}

func (w *watchedSinch) Pages(ctx context.Context, req sinch.ListContactsRequest) iter.Seq2[[]sinch.Contact, error] {
	return func(yield func([]sinch.Contact, error) bool) {
		for page, err := range w.SinchAPI.Pages(ctx, req) {
			n := w.begin()
			w.read(ctx)
			if w.end(n) {
				err = context.Canceled
			}
			if !yield(page, err) {
				return
			}
		}
		// A full run's list is over: the world moves on while it decides
		// and writes.
		if during := w.h.during; during != nil && req.ExternalID == "" && req.Channel == "" {
			w.h.during = nil
			during()
		}
	}
}

func (w *watchedSinch) FindByExternalID(ctx context.Context, externalID string) ([]sinch.Contact, error) {
	n := w.begin()
	cs, err := w.SinchAPI.FindByExternalID(ctx, externalID)
	w.read(ctx)
	if w.end(n) {
		return nil, context.Canceled
	}
	return cs, err
}

func (w *watchedSinch) GetContact(ctx context.Context, id string) (*sinch.Contact, error) {
	n := w.begin()
	c, err := w.SinchAPI.GetContact(ctx, id)
	w.read(ctx)
	if w.end(n) {
		return nil, context.Canceled
	}
	return c, err
}

func (w *watchedSinch) CreateContact(ctx context.Context, c sinch.Contact) (*sinch.Contact, error) {
	n := w.begin()
	w.write(ctx, "create of "+c.ExternalID)
	got, err := w.SinchAPI.CreateContact(ctx, c)
	if w.end(n) {
		return nil, context.Canceled
	}
	return got, err
}

func (w *watchedSinch) UpdateContact(ctx context.Context, id string, body sinch.Contact, mask []string) (*sinch.Contact, error) {
	n := w.begin()
	w.write(ctx, fmt.Sprintf("patch %v of %s", mask, id), id)
	// Clearing is allowed: to undo a swap of two linked contacts' external_ids
	// one is cleared first (its link still names it, so a run cut short
	// there leaves it to the next to put back).
	if who := w.h.owner[id]; w.h.live(who) && slices.Contains(mask, sinch.FieldExternalID) && body.ExternalID != who && body.ExternalID != "" {
		w.report("patch gives contact %s, which stands for live record %s, the external_id %q", id, who, body.ExternalID)
	}
	got, err := w.SinchAPI.UpdateContact(ctx, id, body, mask)
	if w.end(n) {
		return nil, context.Canceled
	}
	return got, err
}

func (w *watchedSinch) DeleteContact(ctx context.Context, id string) error {
	n := w.begin()
	w.write(ctx, "delete of "+id, id)
	if who := w.h.owner[id]; w.h.live(who) {
		how := "it stands for"
		if w.h.rekey[id] {
			how = "the record was renamed, same phone: it must be re-keyed, and it stands for"
		}
		w.report("delete of contact %s (external_id %q): %s live record %s", id, w.before[id].ExternalID, how, who)
	}
	err := w.SinchAPI.DeleteContact(ctx, id)
	if w.end(n) {
		return context.Canceled
	}
	return err
}

func (w *watchedSinch) MergeContacts(ctx context.Context, destinationID, sourceID string) (*sinch.Contact, error) {
	n := w.begin()
	w.write(ctx, fmt.Sprintf("merge of %s into %s", sourceID, destinationID), destinationID, sourceID)
	if to, from := w.h.owner[destinationID], w.h.owner[sourceID]; w.h.live(to) && w.h.live(from) && to != from {
		w.report("merge of %s (stands for %s) into %s (stands for %s) joins two live records' people", sourceID, from, destinationID, to)
	}
	got, err := w.SinchAPI.MergeContacts(ctx, destinationID, sourceID)
	if w.end(n) {
		return nil, context.Canceled
	}
	return got, err
}

// takeLock ends the sessions that hold the run's locks (a partial run's
// project lock; a full run's full-run lock, and the project lock too when it
// is writing a batch), as a failover or an idle-session timeout would, and
// lets a second runner (a standby, with its own store) take the project
// over and finish a full run, while this run waits in the middle of its
// read. The run then has a moment more to notice (its context ending is one
// way) before it goes on; any write it sends after that is a write without
// the lock.
func (w *watchedSinch) takeLock(ctx context.Context) {
	h := w.h
	project, full := uint64(state.ProjectKey(h.project).Int64()), uint64(state.FullRunKey(h.project).Int64())
	var terminated int
	err := h.env.db.QueryRowContext(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
			AND objsubid = 1 AND ((classid = $1::bigint::oid AND objid = $2::bigint::oid) OR (classid = $3::bigint::oid AND objid = $4::bigint::oid))`,
		int64(project>>32), int64(project&0xffffffff), int64(full>>32), int64(full&0xffffffff)).Scan(&terminated)
	if err != nil || terminated == 0 {
		w.report("take the run's lock away: %d sessions ended, %v", terminated, err)
		return
	}

	before := h.emu.Contacts()
	standby := h.watch(before, stopAt{}, func() {})
	runCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := h.reconciler(h.env.standby, standby).Run(runCtx, state.RunFull, true)
	var takeover []string
	for _, p := range standby.problems() {
		takeover = append(takeover, "the runner that took over: "+p)
	}
	if err != nil || rep.Outcome != state.OutcomeSucceeded {
		h.env.log.Error("the runner that took over failed", zap.Error(err), zap.Strings("errors", rep.Errors))
		takeover = append(takeover, "the runner that took over ended "+string(rep.Outcome))
	}

	// From here on the run has had the standby's whole run and then some
	// to notice: whatever it writes now, it writes without the lock.
	select {
	case <-ctx.Done():
	case <-time.After(lockLossSlack):
	}
	w.mu.Lock()
	w.takeover = append(w.takeover, takeover...)
	w.lost = true
	w.mu.Unlock()
}

var _ contactsync.SinchAPI = (*watchedSinch)(nil)
