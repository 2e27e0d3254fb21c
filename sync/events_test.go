package sync_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/sinch/sinchtest"
	"github.com/syncd/syncd/state"
	contactsync "github.com/syncd/syncd/sync"
	"github.com/syncd/syncd/webhook"
)

const eventSecret = "event-secret"

// eventRig is a reconciler whose event queue is fed by a real webhook
// handler, on PostgreSQL and the emulator.
type eventRig struct {
	rec   *contactsync.Reconciler
	emu   *sinchtest.Emulator
	store *state.Store
	queue *state.Events
	srv   *httptest.Server
	seq   int
}

func newEventRig(t *testing.T, rows int) *eventRig {
	t.Helper()
	rec, emu, store := newChaosReconciler(t, sinchtest.Faults{})
	g := &eventRig{rec: rec, emu: emu, store: store, queue: store.Events()}
	rec.Events = g.queue
	h := webhook.NewHandler(webhook.Config{Secret: eventSecret, ProjectID: "chaos", Store: webhook.NewStore(g.queue),
		Logger: zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.Run(ctx) }()
	g.srv = httptest.NewServer(h)
	t.Cleanup(func() { g.srv.Close(); cancel(); <-done })
	if err := crm.UpsertRecords(t.Context(), store.SQL(), "crm_contacts", chaosRows(rows, "Person")); err != nil {
		t.Fatal(err)
	}
	mustRun(t, rec, state.RunFull)
	return g
}

// body is a callback envelope of the rig's project carrying one event.
func (g *eventRig) body(key string, value any) []byte {
	g.seq++
	now := time.Now().UTC()
	b, err := json.Marshal(map[string]any{
		"app_id": "app", "project_id": "chaos", "message_metadata": "", "correlation_id": "",
		"event_time":    now.Format(time.RFC3339Nano),
		"accepted_time": now.Add(time.Duration(g.seq) * time.Microsecond).Format(time.RFC3339Nano),
		key:             value,
	})
	if err != nil {
		panic(err)
	}
	return b
}

// post delivers body signed with secret and returns the status.
func (g *eventRig) post(t *testing.T, body []byte, secret string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, g.srv.URL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	g.seq++
	webhook.Sign(req.Header, []byte(secret), body, fmt.Sprintf("nonce-%d", g.seq), time.Now())
	resp, err := g.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

func (g *eventRig) deliver(t *testing.T, body []byte) {
	t.Helper()
	if got := g.post(t, body, eventSecret); got != http.StatusOK {
		t.Fatalf("callback answered %d", got)
	}
}

func contactEvent(trigger string, c sinch.Contact) (string, any) {
	key := map[string]string{
		webhook.TriggerCreate: "contact_create_notification",
		webhook.TriggerUpdate: "contact_update_notification",
		webhook.TriggerDelete: "contact_delete_notification",
	}[trigger]
	return key, map[string]any{"contact": c}
}

func (g *eventRig) pending(t *testing.T) int {
	t.Helper()
	p, err := g.queue.Pending(t.Context(), "chaos", 1000)
	if err != nil {
		t.Fatal(err)
	}
	return len(p)
}

// converged checks that a full run finds nothing left to do.
func (g *eventRig) converged(t *testing.T) {
	t.Helper()
	g.emu.ResetCalls()
	mustRun(t, g.rec, state.RunFull)
	if n := writes(g.emu); n != 0 {
		t.Errorf("the next full run made %d writes, want 0 (%v)", n, g.emu.CallCounts())
	}
}

func (g *eventRig) contactOf(t *testing.T, ext string) sinch.Contact {
	t.Helper()
	cs := byExternalID(g.emu)[ext]
	if len(cs) != 1 {
		t.Fatalf("%s has %d contacts, want 1: %+v", ext, len(cs), cs)
	}
	return cs[0]
}

// A managed field edited in Sinch is put back with exactly one write, and
// the echo of that write costs no call.
func TestEventPutsBackAHandEdit(t *testing.T) {
	g := newEventRig(t, 3)
	ctx := t.Context()
	c := g.contactOf(t, "crm-00001")
	edited, err := g.rec.Sinch.UpdateContact(ctx, c.ID, sinch.Contact{DisplayName: "Mallory"}, []string{sinch.FieldDisplayName})
	if err != nil {
		t.Fatal(err)
	}
	g.emu.ResetCalls()
	body := g.body(contactEvent(webhook.TriggerUpdate, *edited))
	g.deliver(t, body)
	g.deliver(t, body) // a redelivery: stored once
	if n := g.pending(t); n != 1 {
		t.Fatalf("%d events queued, want 1", n)
	}
	rep := mustRun(t, g.rec, state.RunEvents)
	if n, u := writes(g.emu), g.emu.Calls(sinchtest.OpUpdate); n != 1 || u != 1 {
		t.Errorf("%d writes (%d patches), want exactly one patch: %v", n, u, g.emu.CallCounts())
	}
	if got := g.contactOf(t, "crm-00001"); got.ID != c.ID || got.DisplayName != "Person 1" {
		t.Errorf("contact now %+v, want %s named Person 1 again", got, c.ID)
	}
	if rep.Kind != state.RunEvents || rep.Applied.Patch != 1 {
		t.Errorf("report kind %s, applied %+v", rep.Kind, rep.Applied)
	}
	if n := g.pending(t); n != 0 {
		t.Errorf("%d events still queued", n)
	}

	// The echo of syncd's own patch: the journal knows the contact Sinch
	// answered it with, so not even a read.
	g.emu.ResetCalls()
	g.deliver(t, g.body(contactEvent(webhook.TriggerUpdate, g.contactOf(t, "crm-00001"))))
	mustRun(t, g.rec, state.RunEvents)
	if n := totalCalls(g.emu); n != 0 || g.pending(t) != 0 {
		t.Errorf("the echo cost %v, want no call", g.emu.CallCounts())
	}
	// A stale event (the edit again, after the fix) finds the contact as it
	// is now: no write.
	g.emu.ResetCalls()
	g.deliver(t, g.body(contactEvent(webhook.TriggerUpdate, *edited)))
	mustRun(t, g.rec, state.RunEvents)
	if n := writes(g.emu); n != 0 {
		t.Errorf("a stale event made %d writes (%v)", n, g.emu.CallCounts())
	}
	g.converged(t)
}

// A contact deleted in Sinch whose record lives is recreated and relinked.
func TestEventRecreatesADeletedContact(t *testing.T) {
	g := newEventRig(t, 3)
	c := g.contactOf(t, "crm-00002")
	if err := g.rec.Sinch.DeleteContact(t.Context(), c.ID); err != nil {
		t.Fatal(err)
	}
	g.emu.ResetCalls()
	g.deliver(t, g.body(contactEvent(webhook.TriggerDelete, c)))
	mustRun(t, g.rec, state.RunEvents)
	if n, cr := writes(g.emu), g.emu.Calls(sinchtest.OpCreate); n != 1 || cr != 1 {
		t.Errorf("%v, want exactly one create", g.emu.CallCounts())
	}
	if got := g.contactOf(t, "crm-00002"); got.ID == c.ID || got.DisplayName != "Person 2" {
		t.Errorf("crm-00002 now has %+v", got)
	}
	g.converged(t)
}

// A merge in Sinch moves the link of the deleted contact to the preserved
// one, which is made to match its record; nothing is created.
func TestEventMergeMovesTheLink(t *testing.T) {
	g := newEventRig(t, 3)
	ctx := t.Context()
	c := g.contactOf(t, "crm-00000")
	p := g.emu.Seed(sinch.Contact{DisplayName: "Someone", Language: "EN_US",
		ChannelIdentities: []sinch.ChannelIdentity{{Channel: "MESSENGER", Identity: "psid-1", AppID: "app"}}})[0]
	merged, err := g.rec.Sinch.MergeContacts(ctx, p.ID, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	g.emu.ResetCalls()
	g.deliver(t, g.body("contact_merge_notification", map[string]any{"preserved_contact": merged, "deleted_contact": c}))
	mustRun(t, g.rec, state.RunEvents)
	if n := g.emu.Calls(sinchtest.OpCreate) + g.emu.Calls(sinchtest.OpDelete) + g.emu.Calls(sinchtest.OpMerge); n != 0 {
		t.Errorf("%v, want no create, delete or merge", g.emu.CallCounts())
	}
	got := g.contactOf(t, "crm-00000")
	if got.ID != p.ID || got.DisplayName != "Person 0" {
		t.Errorf("crm-00000 now has %+v, want the preserved %s named Person 0", got, p.ID)
	}
	g.converged(t)
	if got := g.contactOf(t, "crm-00000"); got.ID != p.ID {
		t.Errorf("after a full run crm-00000 has %s, want %s", got.ID, p.ID)
	}
}

// A contact Sinch creates for an inbound sender that holds a linked
// record's identity (a twin) is merged into the record's contact by the
// event run, as a full run would: its scope grows from the new contact to
// every record holding its identity and their contacts.
func TestEventCreateOfATwinIsMerged(t *testing.T) {
	g := newEventRig(t, 2)
	own := g.contactOf(t, "crm-00001")
	s := g.emu.Seed(sinch.Contact{Language: "EN_US",
		ChannelIdentities: []sinch.ChannelIdentity{{Channel: "SMS", Identity: "46730000001"}}})[0]
	g.emu.ResetCalls()
	g.deliver(t, g.body(contactEvent(webhook.TriggerCreate, s)))
	mustRun(t, g.rec, state.RunEvents)
	if n, m := writes(g.emu), g.emu.Calls(sinchtest.OpMerge); n != 1 || m != 1 {
		t.Errorf("%v, want one merge", g.emu.CallCounts())
	}
	if got := g.contactOf(t, "crm-00001"); got.ID != own.ID {
		t.Errorf("crm-00001 now has %s, want its own contact %s", got.ID, own.ID)
	}
	if n := len(g.emu.Contacts()); n != 2 {
		t.Errorf("the emulator holds %d contacts, want 2", n)
	}
	if n := g.pending(t); n != 0 {
		t.Errorf("%d events still queued", n)
	}
	g.converged(t)
}

// An event about the contact of a record deleted in the CRM removes it per
// sync.delete_policy, as a full run would (20 records, so that one delete
// stays within the default sync.max_delete_fraction). The event is a
// person's edit: the echo of syncd's own create would be known for one and
// read nothing, leaving the deleted record to the CRM's own path.
func TestEventOfADeletedRecordDeletes(t *testing.T) {
	g := newEventRig(t, 20)
	c, err := g.emu.EditAsPerson(g.contactOf(t, "crm-00001").ID, func(c *sinch.Contact) { c.DisplayName = "Edited" })
	if err != nil {
		t.Fatal(err)
	}
	execSQL(t, g.store, `UPDATE crm_contacts SET deleted_at = now() WHERE external_id = 'crm-00001'`)
	g.emu.ResetCalls()
	g.deliver(t, g.body(contactEvent(webhook.TriggerUpdate, c)))
	mustRun(t, g.rec, state.RunEvents)
	if n, d := writes(g.emu), g.emu.Calls(sinchtest.OpDelete); n != 1 || d != 1 {
		t.Errorf("%v, want exactly one delete", g.emu.CallCounts())
	}
	if cs := byExternalID(g.emu)["crm-00001"]; len(cs) != 0 {
		t.Errorf("crm-00001 still has %v", cs)
	}
}

// A forged callback is refused and causes no run and no Sinch call.
func TestForgedEventCostsNothing(t *testing.T) {
	g := newEventRig(t, 2)
	c := g.contactOf(t, "crm-00001")
	g.emu.ResetCalls()
	if got := g.post(t, g.body(contactEvent(webhook.TriggerDelete, c)), "not-the-secret"); got != http.StatusUnauthorized {
		t.Fatalf("forged callback answered %d", got)
	}
	rep, err := g.rec.Run(t.Context(), state.RunEvents, false)
	if err != nil || rep.RunID != 0 {
		t.Fatalf("run %d, err %v; want none", rep.RunID, err)
	}
	if n := totalCalls(g.emu); n != 0 {
		t.Errorf("%d Sinch calls after a forged callback (%v)", n, g.emu.CallCounts())
	}
}

// Events that arrive out of order and twice, about several contacts at
// once, are each processed once and the project converges.
func TestEventsOutOfOrderConverge(t *testing.T) {
	g := newEventRig(t, 6)
	ctx := t.Context()
	c1, c2, c3 := g.contactOf(t, "crm-00001"), g.contactOf(t, "crm-00002"), g.contactOf(t, "crm-00003")
	e1, err := g.rec.Sinch.UpdateContact(ctx, c1.ID, sinch.Contact{Email: "x@example.com"}, []string{sinch.FieldEmail})
	if err != nil {
		t.Fatal(err)
	}
	e1b, err := g.rec.Sinch.UpdateContact(ctx, c1.ID, sinch.Contact{DisplayName: "Y"}, []string{sinch.FieldDisplayName})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.rec.Sinch.DeleteContact(ctx, c2.ID); err != nil {
		t.Fatal(err)
	}
	bodies := [][]byte{
		g.body(contactEvent(webhook.TriggerUpdate, *e1b)), // the later edit first
		g.body(contactEvent(webhook.TriggerDelete, c2)),
		g.body(contactEvent(webhook.TriggerUpdate, *e1)),
		g.body(contactEvent(webhook.TriggerUpdate, c3)), // nothing changed
		g.body("duplicated_contact_identities_notification", map[string]any{"duplicated_identities": []map[string]any{
			{"channel": "SMS", "contact_ids": []string{c1.ID, c3.ID}}}}),
	}
	for _, i := range []int{0, 1, 2, 1, 3, 0, 4} {
		g.deliver(t, bodies[i])
	}
	g.emu.ResetCalls()
	mustRun(t, g.rec, state.RunEvents)
	if p, cr := g.emu.Calls(sinchtest.OpUpdate), g.emu.Calls(sinchtest.OpCreate); p != 1 || cr != 1 || writes(g.emu) != 2 {
		t.Errorf("%v, want one patch and one create", g.emu.CallCounts())
	}
	var done int
	if err := g.store.DB().Raw(`SELECT count(*) FROM syncd.webhook_events WHERE done_at IS NOT NULL AND attempts = 1`).Scan(&done).Error; err != nil {
		t.Fatal(err)
	}
	if done != len(bodies) || g.pending(t) != 0 {
		t.Errorf("%d events done once, %d pending; want %d and 0", done, g.pending(t), len(bodies))
	}
	g.converged(t)
}

// A signed event that lies is a trigger all the same: it costs reads and no
// write, whatever it claims, since every decision rests on what the run
// reads afresh. One lie per trigger.
func TestSignedLiesCostReadsOnly(t *testing.T) {
	for _, tc := range []struct {
		name  string
		event func(g *eventRig, stranger sinch.Contact) (string, any)
	}{
		{"merge: a live linked contact merged into a stranger", func(g *eventRig, stranger sinch.Contact) (string, any) {
			a := g.contactOf(t, "crm-00000")
			claimed := stranger
			claimed.ExternalID = a.ExternalID
			claimed.ChannelIdentities = append(claimed.ChannelIdentities, a.ChannelIdentities...)
			return "contact_merge_notification", map[string]any{"preserved_contact": claimed, "deleted_contact": a}
		}},
		{"create: a stranger holding a record's phone", func(g *eventRig, stranger sinch.Contact) (string, any) {
			claimed := stranger
			claimed.ChannelIdentities = g.contactOf(t, "crm-00001").ChannelIdentities
			return contactEvent(webhook.TriggerCreate, claimed)
		}},
		{"update: a managed field edited", func(g *eventRig, _ sinch.Contact) (string, any) {
			c := g.contactOf(t, "crm-00001")
			c.DisplayName = "Mallory"
			return contactEvent(webhook.TriggerUpdate, c)
		}},
		{"delete: a live contact deleted", func(g *eventRig, _ sinch.Contact) (string, any) {
			return contactEvent(webhook.TriggerDelete, g.contactOf(t, "crm-00002"))
		}},
		{"duplication: two records' contacts sharing an identity", func(g *eventRig, _ sinch.Contact) (string, any) {
			ids := []string{g.contactOf(t, "crm-00000").ID, g.contactOf(t, "crm-00001").ID}
			return "duplicated_contact_identities_notification", map[string]any{
				"duplicated_identities": []map[string]any{{"channel": "SMS", "contact_ids": ids}}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newEventRig(t, 3)
			stranger := g.emu.Seed(sinch.Contact{Language: "EN_US", DisplayName: "Stranger",
				ChannelIdentities: []sinch.ChannelIdentity{{Channel: "MESSENGER", Identity: "psid-stranger", AppID: "app"}}})[0]
			before := g.emu.Contacts()
			g.emu.ResetCalls()
			g.deliver(t, g.body(tc.event(g, stranger)))
			mustRun(t, g.rec, state.RunEvents)
			if n := writes(g.emu); n != 0 {
				t.Errorf("the lie cost %v, want reads only", g.emu.CallCounts())
			}
			if after := g.emu.Contacts(); len(after) != len(before) {
				t.Errorf("the emulator holds %d contacts, had %d", len(after), len(before))
			}
			if n := g.pending(t); n != 0 {
				t.Errorf("%d events still queued", n)
			}
			g.converged(t)
		})
	}
}

// One event can cost only so much: a duplication naming thousands of
// contacts has its first ones read and the rest left to the full run,
// counted as deferred, and a real hand edit queued beside it is put back
// in the same run.
func TestEventWorkIsBounded(t *testing.T) {
	g := newEventRig(t, 3)
	c := g.contactOf(t, "crm-00001")
	edited, err := g.rec.Sinch.UpdateContact(t.Context(), c.ID, sinch.Contact{DisplayName: "Mallory"}, []string{sinch.FieldDisplayName})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 5000)
	for i := range ids {
		ids[i] = fmt.Sprintf("01JB%022d", i)
	}
	g.emu.ResetCalls()
	g.deliver(t, g.body("duplicated_contact_identities_notification", map[string]any{
		"duplicated_identities": []map[string]any{{"channel": "SMS", "contact_ids": ids}}}))
	g.deliver(t, g.body(contactEvent(webhook.TriggerUpdate, *edited)))
	rep := mustRun(t, g.rec, state.RunEvents)
	if reads := g.emu.Calls(sinchtest.OpGet) + g.emu.Calls(sinchtest.OpList); reads > 60 {
		t.Errorf("the events cost %d reads (%v), want at most a few dozen", reads, g.emu.CallCounts())
	}
	if rep.Deferred != 5000-50 {
		t.Errorf("deferred %d, want the %d contacts past the first 50", rep.Deferred, 5000-50)
	}
	if got := g.contactOf(t, "crm-00001"); got.DisplayName != "Person 1" {
		t.Errorf("the hand edit was not put back: %+v", got)
	}
}

// A signed "echo" is skipped work, never a write: a callback claiming a
// contact is as syncd's create left it, sent while a person's edit stands,
// costs no call and hides nothing from the next full run (nor from the
// edit's own event).
func TestForgedEchoIsSkippedWork(t *testing.T) {
	g := newEventRig(t, 3)
	c := g.contactOf(t, "crm-00001") // as syncd's create left it
	if _, err := g.emu.EditAsPerson(c.ID, func(c *sinch.Contact) { c.DisplayName = "Mallory" }); err != nil {
		t.Fatal(err)
	}
	g.emu.ResetCalls()
	g.deliver(t, g.body(contactEvent(webhook.TriggerUpdate, c)))
	mustRun(t, g.rec, state.RunEvents)
	if n := totalCalls(g.emu); n != 0 || g.pending(t) != 0 {
		t.Errorf("the forged echo cost %v, want no call", g.emu.CallCounts())
	}
	mustRun(t, g.rec, state.RunFull)
	if got := g.contactOf(t, "crm-00001"); got.DisplayName != "Person 1" {
		t.Errorf("the full run left %+v", got)
	}
}

// One event that cannot be processed (it names a contact whose GET Sinch
// answers 400) does not take the others of its batch down: the five hand
// edits queued with it are put back in the same run, and it is tried
// alone, waiting longer after each failure, then parked with its reason,
// where it holds up nothing. Put back by hand, it is processed once it
// can be.
func TestABadEventIsIsolated(t *testing.T) {
	g := newEventRig(t, 6)
	ctx := t.Context()
	obs := &lagObserver{}
	g.rec.Observer = obs
	const bad = "01BADBADBADBADBADBADBADBAD"
	g.emu.RefuseReads(func(id string) error {
		if id == bad {
			return errors.New("contact_id: malformed")
		}
		return nil
	})
	for i := range 6 {
		if i == 2 {
			g.deliver(t, g.body(contactEvent(webhook.TriggerUpdate, sinch.Contact{ID: bad, ExternalID: "crm-00002", DisplayName: "Bad"})))
			continue
		}
		ext := fmt.Sprintf("crm-%05d", i)
		c := g.contactOf(t, ext)
		edited, err := g.rec.Sinch.UpdateContact(ctx, c.ID, sinch.Contact{DisplayName: "Mallory"}, []string{sinch.FieldDisplayName})
		if err != nil {
			t.Fatal(err)
		}
		g.deliver(t, g.body(contactEvent(webhook.TriggerUpdate, *edited)))
	}
	badEvent := func() (attempts int, parked bool, reason string) {
		t.Helper()
		var row struct {
			Attempts int
			Parked   bool
			Error    string
		}
		if err := g.store.DB().Raw(`SELECT attempts, parked_at IS NOT NULL AS parked, COALESCE(error, '') AS error
			FROM syncd.webhook_events WHERE trigger = 'CONTACT_UPDATE' AND payload::text LIKE ?`, "%"+bad+"%").Scan(&row).Error; err != nil {
			t.Fatal(err)
		}
		return row.Attempts, row.Parked, row.Error
	}

	g.emu.ResetCalls()
	rep, err := g.rec.Run(ctx, state.RunEvents, false)
	if err == nil || rep.Outcome != state.OutcomeFailed || !strings.Contains(err.Error(), "1 event could not be processed") {
		t.Fatalf("run: outcome %s, err %v; want it failed for the one event", rep.Outcome, err)
	}
	if rep.Applied.Patch != 5 || g.emu.Calls(sinchtest.OpUpdate) != 5 {
		t.Errorf("applied %+v (%v), want the five edits put back", rep.Applied, g.emu.CallCounts())
	}
	for i := range 6 {
		if c := g.contactOf(t, fmt.Sprintf("crm-%05d", i)); c.DisplayName != fmt.Sprintf("Person %d", i) {
			t.Errorf("%s is %q", c.ExternalID, c.DisplayName)
		}
	}
	if n := g.pending(t); n != 0 {
		t.Errorf("%d events ready, want none: the bad one waits out its backoff", n)
	}
	if a, parked, reason := badEvent(); a != 1 || parked || !strings.Contains(reason, "HTTP 400") {
		t.Errorf("bad event: %d attempts, parked %v, %q", a, parked, reason)
	}
	// Waiting, it makes no run: the queue is not held up.
	if rep, err := g.rec.Run(ctx, state.RunEvents, false); err != nil || rep.RunID != 0 {
		t.Errorf("a run while it waits: %d, %v", rep.RunID, err)
	}

	// Each time its wait is over it is tried alone again, then parked.
	for attempt := 2; attempt <= 5; attempt++ {
		execSQL(t, g.store, `UPDATE syncd.webhook_events SET next_attempt_at = now() WHERE next_attempt_at IS NOT NULL`)
		g.emu.ResetCalls()
		rep, err := g.rec.Run(ctx, state.RunEvents, false)
		if err == nil || writes(g.emu) != 0 || g.emu.Calls(sinchtest.OpGet) != 1 {
			t.Errorf("attempt %d: %v, %v; want it failed with one GET and no write", attempt, err, g.emu.CallCounts())
		}
		if rep.RunID == 0 {
			t.Fatalf("attempt %d made no run", attempt)
		}
	}
	a, parked, reason := badEvent()
	if a != 5 || !parked || !strings.Contains(reason, "read contact "+bad) || !strings.Contains(reason, "HTTP 400") {
		t.Errorf("bad event: %d attempts, parked %v, %q; want parked after 5 with its reason", a, parked, reason)
	}
	if obs.parked != 1 {
		t.Errorf("the observer was told of %d parked events, want 1", obs.parked)
	}
	q, err := g.queue.Queue(ctx, "chaos")
	if err != nil || q.Pending != 0 || q.Parked != 1 {
		t.Errorf("queue %+v, %v", q, err)
	}
	// Parked, it holds up nothing: a new edit is put back at once.
	c := g.contactOf(t, "crm-00001")
	edited, err := g.rec.Sinch.UpdateContact(ctx, c.ID, sinch.Contact{DisplayName: "Eve"}, []string{sinch.FieldDisplayName})
	if err != nil {
		t.Fatal(err)
	}
	g.deliver(t, g.body(contactEvent(webhook.TriggerUpdate, *edited)))
	mustRun(t, g.rec, state.RunEvents)
	if got := g.contactOf(t, "crm-00001"); got.DisplayName != "Person 1" {
		t.Errorf("the edit behind the parked event was not put back: %+v", got)
	}

	// Put back by hand once Sinch reads the id again (404: gone), it is done.
	g.emu.RefuseReads(nil)
	if ids, err := g.queue.Requeue(ctx, "chaos", nil); err != nil || len(ids) != 1 {
		t.Fatalf("requeued %v, %v", ids, err)
	}
	mustRun(t, g.rec, state.RunEvents)
	if n := g.pending(t); n != 0 || obs.parked != 0 {
		t.Errorf("%d pending, %d parked after the retry", n, obs.parked)
	}
	g.converged(t)
}

// An outage of Sinch spends an attempt of a few events, not of every one
// queued: after three events in a row fail alone for want of Sinch, the
// run stops, and the others are tried again, as new, by the next run.
func TestAnOutageParksNoEvent(t *testing.T) {
	g := newEventRig(t, 6)
	ctx := t.Context()
	for i := range 6 {
		c := g.contactOf(t, fmt.Sprintf("crm-%05d", i))
		edited, err := g.rec.Sinch.UpdateContact(ctx, c.ID, sinch.Contact{DisplayName: "Mallory"}, []string{sinch.FieldDisplayName})
		if err != nil {
			t.Fatal(err)
		}
		g.deliver(t, g.body(contactEvent(webhook.TriggerUpdate, *edited)))
	}
	// Sinch fails every call: the batch fails, then three events alone,
	// and the run stops there rather than spend an attempt of every one.
	g.emu.SetFaults(sinchtest.Faults{ErrorRate: 1})
	_, err := g.rec.Run(ctx, state.RunEvents, false)
	if err == nil || !strings.Contains(err.Error(), "3 events in a row failed alone") {
		t.Fatalf("run: %v; want it stopped after three failures alone", err)
	}
	var tried, untouched int
	if err := g.store.DB().Raw(`SELECT count(*) FILTER (WHERE attempts = 1) FROM syncd.webhook_events`).Scan(&tried).Error; err != nil {
		t.Fatal(err)
	}
	if err := g.store.DB().Raw(`SELECT count(*) FILTER (WHERE attempts = 0) FROM syncd.webhook_events`).Scan(&untouched).Error; err != nil {
		t.Fatal(err)
	}
	if tried != 3 || untouched != 3 {
		t.Errorf("%d events tried alone, %d untouched; want 3 and 3", tried, untouched)
	}
	g.emu.SetFaults(sinchtest.Faults{})
	execSQL(t, g.store, `UPDATE syncd.webhook_events SET next_attempt_at = now() WHERE next_attempt_at IS NOT NULL`)
	mustRun(t, g.rec, state.RunEvents)
	if n := g.pending(t); n != 0 {
		t.Errorf("%d events left", n)
	}
	g.converged(t)
}
