package state_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/syncd/syncd/state"
	"github.com/syncd/syncd/state/statetest"
	"github.com/syncd/syncd/webhook"
)

const eventProject = "p1"

// callback is a verified CONTACT_UPDATE callback of eventProject about
// contactID, as the webhook handler hands it over.
func callback(t *testing.T, nonce, contactID string) webhook.Callback {
	t.Helper()
	body := fmt.Appendf(nil, `{"app_id":"app","project_id":%q,"accepted_time":"2026-12-01T10:00:00.5Z","event_time":"2026-12-01T10:00:00Z",`+
		`"message_metadata":"","correlation_id":"","contact_update_notification":{"contact":{"id":%q,"display_name":"Ann","external_id":"crm-1",`+
		`"channel_identities":[{"channel":"SMS","identity":"46732000001"}],"language":"EN_US"}}}`, eventProject, contactID)
	ev, err := webhook.ParseEvent(body)
	if err != nil {
		t.Fatal(err)
	}
	return webhook.Callback{Nonce: nonce, Key: webhook.EventKey(body), Event: ev, Body: body}
}

// queueState is what the event tables hold.
type queueState struct{ Events, Nonces, Pending int }

func queueOf(t *testing.T, s *state.Store) queueState {
	t.Helper()
	var q queueState
	err := s.DB().WithContext(ctxFor(t)).Raw(`SELECT (SELECT count(*) FROM syncd.webhook_events) AS events,
		(SELECT count(*) FROM syncd.webhook_nonces) AS nonces,
		(SELECT count(*) FROM syncd.webhook_events WHERE done_at IS NULL) AS pending`).Scan(&q).Error
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// Within one batch, a repeated nonce is a replay and a repeated event a
// duplicate, as they would be across batches.
func TestSaveCallbacksInOneBatch(t *testing.T) {
	t.Parallel()
	s := statetest.NewStore(t)
	batch := []webhook.Callback{callback(t, "n1", "A"), callback(t, "n2", "A"), callback(t, "n1", "B"), callback(t, "n3", "B")}
	saved, err := s.Events().SaveCallbacks(ctxFor(t), eventProject, batch)
	if err != nil {
		t.Fatal(err)
	}
	want := []webhook.Saved{webhook.Stored, webhook.Duplicate, webhook.Replayed, webhook.Stored}
	for i := range batch {
		if saved[i] != want[i] {
			t.Errorf("callback %d: %v, want %v", i, saved[i], want[i])
		}
	}
	if got, want := queueOf(t, s), (queueState{Events: 2, Nonces: 3, Pending: 2}); got != want {
		t.Errorf("state %+v, want %+v", got, want)
	}
	again, err := s.Events().SaveCallbacks(ctxFor(t), eventProject, []webhook.Callback{callback(t, "n1", "C")})
	if err != nil || len(again) != 1 || again[0] != webhook.Replayed {
		t.Errorf("a nonce of an earlier batch: %v, %v; want a replay", again, err)
	}
}

// Stored events are pending, oldest first, until a run marks them done; a
// failed attempt leaves them pending, counted; the queue says so.
func TestEventQueue(t *testing.T) {
	t.Parallel()
	s := statetest.NewStore(t)
	events := s.Events()
	ctx := ctxFor(t)
	if _, err := events.SaveCallbacks(ctx, eventProject, []webhook.Callback{callback(t, "n1", "C1"), callback(t, "n2", "C2")}); err != nil {
		t.Fatal(err)
	}
	pending, err := events.Pending(ctx, eventProject, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 2 || pending[0].Trigger != webhook.TriggerUpdate || pending[0].Event.Contact.ID != "C1" ||
		pending[1].Event.Contact.ID != "C2" || pending[0].EventTime.IsZero() {
		t.Fatalf("pending = %+v", pending)
	}
	if err := events.Failed(ctx, []int64{pending[1].ID}, "Sinch said no", 0); err != nil {
		t.Fatal(err)
	}
	if err := events.Done(ctx, []int64{pending[0].ID}, 7); err != nil {
		t.Fatal(err)
	}
	if got := queueOf(t, s); got.Pending != 1 {
		t.Errorf("after Done: %+v", got)
	}
	q, err := events.Queue(ctx, eventProject)
	if err != nil {
		t.Fatal(err)
	}
	if q.Pending != 1 || q.DoneLastHour != 1 || q.Retried != 1 || q.LastError != "Sinch said no" || q.OldestPending == nil {
		t.Errorf("queue %+v", q)
	}
	if other, err := events.Pending(ctx, "another-project", 10); err != nil || len(other) != 0 {
		t.Errorf("another project's pending = %+v, %v", other, err)
	}
}

// Storing new events notifies EventsChannel with their project, in the
// storing transaction, so that whichever syncd holds the project lock hears
// of them; a callback that stores nothing new (a duplicate) notifies
// nothing.
func TestStoringEventsNotifies(t *testing.T) {
	t.Parallel()
	dbURL := statetest.NewDatabase(t)
	store := statetest.OpenStore(t, dbURL)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	listener, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = listener.Close(context.Background()) })
	if _, err := listener.Exec(ctx, "LISTEN "+state.EventsChannel); err != nil {
		t.Fatal(err)
	}
	// A marker sent after a step: the next notification shows whether the
	// step sent one (notifications arrive in commit order).
	marker := func() {
		t.Helper()
		if err := store.DB().Exec(`SELECT pg_notify(?, 'marker')`, state.EventsChannel).Error; err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name string
		cb   webhook.Callback
		want []string
	}{
		{"a new event", callback(t, "n1", "C1"), []string{eventProject, "marker"}},
		{"its redelivery", callback(t, "n2", "C1"), []string{"marker"}},
		{"another event", callback(t, "n3", "C2"), []string{eventProject, "marker"}},
	}
	for _, st := range steps {
		if _, err := store.Events().SaveCallbacks(ctx, eventProject, []webhook.Callback{st.cb}); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		marker()
		for _, want := range st.want {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			n, err := listener.WaitForNotification(wctx)
			cancel()
			if err != nil {
				t.Fatalf("%s: waiting for %q: %v", st.name, want, err)
			}
			if n.Payload != want {
				t.Fatalf("%s: notified %q, want %q", st.name, n.Payload, want)
			}
		}
	}
}

// An event that failed waits out its backoff before it is pending again;
// a parked one is pending no more, shown in the queue with its reason,
// found by the contacts and the external_id it names, and put back by
// Requeue, which notifies EventsChannel.
func TestEventBackoffAndParking(t *testing.T) {
	t.Parallel()
	dbURL := statetest.NewDatabase(t)
	s := statetest.OpenStore(t, dbURL)
	events := s.Events()
	ctx := ctxFor(t)
	cbs := []webhook.Callback{callback(t, "n1", "C1"), callback(t, "n2", "C2"), callback(t, "n3", "C3"), callback(t, "n4", "C4")}
	if _, err := events.SaveCallbacks(ctx, eventProject, cbs); err != nil {
		t.Fatal(err)
	}
	pending, err := events.Pending(ctx, eventProject, 10)
	if err != nil || len(pending) != 4 {
		t.Fatalf("pending %d, %v", len(pending), err)
	}
	c1, c2, c3 := pending[0].ID, pending[1].ID, pending[2].ID
	if err := events.Failed(ctx, []int64{c1}, "Sinch said 503", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := events.Park(ctx, []int64{c2, c3}, "read contact C2: HTTP 400"); err != nil {
		t.Fatal(err)
	}
	ready := func() []string {
		t.Helper()
		p, err := events.Pending(ctx, eventProject, 10)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, ev := range p {
			out = append(out, ev.Event.Contact.ID)
		}
		return out
	}
	if got := ready(); !slices.Equal(got, []string{"C4"}) {
		t.Errorf("ready %v, want only C4: C1 backs off, C2 and C3 are parked", got)
	}
	q, err := events.Queue(ctx, eventProject)
	if err != nil {
		t.Fatal(err)
	}
	if q.Pending != 2 || q.Retried != 1 || q.NextRetry == nil || q.LastError != "Sinch said 503" || q.Parked != 2 ||
		len(q.ParkedReasons) != 1 || q.ParkedReasons[0].Events != 2 || !slices.Equal(q.ParkedReasons[0].IDs, []int64{c2, c3}) ||
		q.ParkedReasons[0].Reason != "read contact C2: HTTP 400" {
		t.Errorf("queue %+v", q)
	}
	mustExec(t, s, `UPDATE syncd.webhook_events SET next_attempt_at = now() WHERE id = ?`, c1) // the backoff is over
	if got := ready(); !slices.Equal(got, []string{"C1", "C4"}) {
		t.Errorf("ready %v once C1's backoff is over", got)
	}

	for _, tc := range []struct {
		ids  []string
		ext  string
		want []int64
	}{
		{[]string{"C2"}, "", []int64{c2}},
		{[]string{"C9", "C3"}, "", []int64{c3}},
		{nil, "crm-1", []int64{c2, c3}},
		{[]string{"C1", "C4"}, "crm-9", nil}, // not parked, or naming neither
	} {
		got, err := events.ParkedNaming(ctx, eventProject, tc.ids, tc.ext, 10)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, p := range got {
			ids = append(ids, p.ID)
			if p.Reason != "read contact C2: HTTP 400" || p.Attempts != 1 || p.Event.Contact == nil || p.ParkedAt.IsZero() {
				t.Errorf("parked %+v", p)
			}
		}
		if !slices.Equal(ids, tc.want) {
			t.Errorf("parked naming %v or %q: %v, want %v", tc.ids, tc.ext, ids, tc.want)
		}
	}

	listener, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = listener.Close(context.Background()) })
	if _, err := listener.Exec(ctx, "LISTEN "+state.EventsChannel); err != nil {
		t.Fatal(err)
	}
	got, err := events.Requeue(ctx, eventProject, []int64{c3, c1})
	if err != nil || !slices.Equal(got, []int64{c3}) {
		t.Fatalf("requeued %v, %v; want only the parked %d", got, err, c3)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	n, err := listener.WaitForNotification(wctx)
	cancel()
	if err != nil || n.Payload != eventProject {
		t.Fatalf("notification %+v, %v", n, err)
	}
	if got, err := events.Requeue(ctx, "another-project", nil); err != nil || len(got) != 0 {
		t.Errorf("another project requeued %v, %v", got, err)
	}
	if got, err := events.Requeue(ctx, eventProject, nil); err != nil || !slices.Equal(got, []int64{c2}) {
		t.Errorf("requeued all: %v, %v; want %d", got, err, c2)
	}
	if got := ready(); !slices.Equal(got, []string{"C1", "C2", "C3", "C4"}) {
		t.Errorf("ready %v after the requeues", got)
	}
	if p, err := events.Pending(ctx, eventProject, 10); err != nil || p[1].Attempts != 0 || p[2].Attempts != 0 {
		t.Errorf("requeued events keep attempts: %+v, %v", p, err)
	}
}

// A parked event is history once older than the retention, as a
// processed one is; a queued one is work, whatever its age.
func TestPruneParkedEvents(t *testing.T) {
	t.Parallel()
	s := statetest.NewStore(t)
	events := s.Events()
	ctx := ctxFor(t)
	if _, err := events.SaveCallbacks(ctx, eventProject, []webhook.Callback{callback(t, "n1", "C1"), callback(t, "n2", "C2"),
		callback(t, "n3", "C3")}); err != nil {
		t.Fatal(err)
	}
	p, err := events.Pending(ctx, eventProject, 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := events.Park(ctx, []int64{p[0].ID, p[1].ID}, "no"); err != nil {
		t.Fatal(err)
	}
	mustExec(t, s, `UPDATE syncd.webhook_events SET parked_at = now() - interval '40 days' WHERE id = ?`, p[0].ID)
	mustExec(t, s, `UPDATE syncd.webhook_events SET received_at = now() - interval '40 days' WHERE id IN (?, ?)`, p[0].ID, p[2].ID)
	before := time.Now().Add(-30 * 24 * time.Hour)
	if st, err := events.Prunable(ctx, eventProject, before); err != nil || st.Events != 1 {
		t.Errorf("prunable %+v, %v; want the old parked event", st, err)
	}
	if st, err := events.PruneEvents(ctx, eventProject, before, 10); err != nil || st.Events != 1 {
		t.Errorf("pruned %+v, %v", st, err)
	}
	if got := queueOf(t, s); got.Events != 2 || got.Pending != 2 {
		t.Errorf("left %+v, want the recent parked one and the old queued one", got)
	}
}
