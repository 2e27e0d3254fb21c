package webhook_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	stdsync "sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/syncd/syncd/state"
	"github.com/syncd/syncd/state/statetest"
	"github.com/syncd/syncd/webhook"
)

const (
	testSecret  = "test-secret"
	testProject = "p1"
)

// countingObserver counts callbacks by outcome.
type countingObserver struct {
	mu       stdsync.Mutex
	received map[string]int
	dups     int
	refused  map[string]int
}

func (o *countingObserver) CallbackReceived(trigger string, duplicate bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.received == nil {
		o.received = map[string]int{}
	}
	o.received[trigger]++
	if duplicate {
		o.dups++
	}
}

func (o *countingObserver) CallbackRefused(reason string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.refused == nil {
		o.refused = map[string]int{}
	}
	o.refused[reason]++
}

func (o *countingObserver) refusedFor(reason string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.refused[reason]
}

// receiver is a Handler on a fresh database, served by httptest.
type receiver struct {
	h      *webhook.Handler
	events *state.Events
	store  *state.Store
	obs    *countingObserver
	srv    *httptest.Server
	now    atomic.Pointer[time.Time]
	stored atomic.Int64
}

func newReceiver(tb testing.TB) *receiver {
	tb.Helper()
	return newReceiverOn(tb, freshStore(tb))
}

// freshStore is a Store on a fresh database.
func freshStore(tb testing.TB) *state.Store {
	tb.Helper()
	return statetest.NewStore(tb)
}

// newReceiverOn is a receiver on store's database, as a restarted process
// would be.
func newReceiverOn(tb testing.TB, store *state.Store) *receiver {
	tb.Helper()
	return newReceiverWith(tb, store, func(*webhook.Config) {})
}

// newReceiverWith is newReceiverOn with the handler's configuration
// changed by tune, served as webhook.NewServer serves it.
func newReceiverWith(tb testing.TB, store *state.Store, tune func(*webhook.Config)) *receiver {
	tb.Helper()
	rv := &receiver{events: store.Events(), store: store, obs: &countingObserver{}}
	start := time.Now()
	rv.now.Store(&start)
	cfg := webhook.Config{
		Secret: testSecret, ProjectID: testProject, Store: webhook.NewStore(rv.events), Logger: zaptest.NewLogger(tb),
		Observer: rv.obs, Now: func() time.Time { return *rv.now.Load() },
		OnStored: func() { rv.stored.Add(1) },
	}
	tune(&cfg)
	rv.h = webhook.NewHandler(cfg)
	h := rv.h
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.Run(ctx) }()
	rv.srv = httptest.NewUnstartedServer(h)
	rv.srv.Config = webhook.NewServer(h, cfg.BodyTimeout)
	rv.srv.Start()
	tb.Cleanup(func() {
		rv.srv.Close()
		cancel()
		<-done
	})
	return rv
}

// post sends body signed with secret, nonce and the signing time.
func (rv *receiver) post(tb testing.TB, body []byte, secret, nonce string, signedAt time.Time) int {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, rv.srv.URL, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		webhook.Sign(req.Header, []byte(secret), body, nonce, signedAt)
	}
	resp, err := rv.srv.Client().Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// tables is what the event tables hold.
type tables struct{ Events, Nonces, Pending int }

func (rv *receiver) state(tb testing.TB) tables {
	tb.Helper()
	var s tables
	err := rv.store.DB().Raw(`SELECT (SELECT count(*) FROM syncd.webhook_events) AS events,
		(SELECT count(*) FROM syncd.webhook_nonces) AS nonces,
		(SELECT count(*) FROM syncd.webhook_events WHERE done_at IS NULL) AS pending`).Scan(&s).Error
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// updateEvent is a CONTACT_UPDATE callback body of project.
func updateEvent(project, contactID, name string) []byte {
	return fmt.Appendf(nil, `{"app_id":"app","project_id":%q,"accepted_time":"2026-12-01T10:00:00.5Z","event_time":"2026-12-01T10:00:00Z",`+
		`"message_metadata":"","correlation_id":"","contact_update_notification":{"contact":{"id":%q,"display_name":%q,"external_id":"crm-1",`+
		`"channel_identities":[{"channel":"SMS","identity":"46732000001"}],"language":"EN_US"}}}`, project, contactID, name)
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
