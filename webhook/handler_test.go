package webhook_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/syncd/syncd/webhook"
)

// Every refused callback leaves the store as it was; a verified one is
// stored once however often it comes.
func TestHandlerRefusesAndDedupes(t *testing.T) {
	rv := newReceiver(t)
	now := *rv.now.Load()
	body := updateEvent(testProject, "C1", "Ann")

	if got := rv.post(t, body, testSecret, "nonce-1", now); got != http.StatusOK {
		t.Fatalf("a good callback: %d", got)
	}
	want := tables{Events: 1, Nonces: 1, Pending: 1}
	if got := rv.state(t); got != want {
		t.Fatalf("after one callback: %+v, want %+v", got, want)
	}

	big := append(updateEvent(testProject, "C2", strings.Repeat("x", webhook.MaxBody)), ' ')
	tests := []struct {
		name   string
		body   []byte
		secret string
		nonce  string
		at     time.Time
		status int
		reason string
	}{
		{"unsigned", updateEvent(testProject, "C2", "Bob"), "", "", now, http.StatusUnauthorized, webhook.ReasonMissingSignature},
		{"forged", updateEvent(testProject, "C2", "Bob"), "not-the-secret", "nonce-2", now, http.StatusUnauthorized, webhook.ReasonBadSignature},
		{"replayed nonce", body, testSecret, "nonce-1", now, http.StatusUnauthorized, webhook.ReasonReplay},
		{"replayed nonce, other body", updateEvent(testProject, "C2", "Bob"), testSecret, "nonce-1", now, http.StatusUnauthorized, webhook.ReasonReplay},
		{"stale", updateEvent(testProject, "C2", "Bob"), testSecret, "nonce-3", now.Add(-webhook.MaxSkew - time.Minute), http.StatusUnauthorized, webhook.ReasonStale},
		{"from the future", updateEvent(testProject, "C2", "Bob"), testSecret, "nonce-4", now.Add(webhook.MaxSkew + time.Minute), http.StatusUnauthorized, webhook.ReasonStale},
		{"oversized", big, testSecret, "nonce-5", now, http.StatusRequestEntityTooLarge, webhook.ReasonTooLarge},
		{"not an envelope", []byte(`[1,2]`), testSecret, "nonce-6", now, http.StatusBadRequest, webhook.ReasonBadPayload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := rv.obs.refusedFor(tt.reason)
			if got := rv.post(t, tt.body, tt.secret, tt.nonce, tt.at); got != tt.status {
				t.Errorf("status %d, want %d", got, tt.status)
			}
			if got := rv.state(t); got != want {
				t.Errorf("state %+v, want %+v (unchanged)", got, want)
			}
			if got := rv.obs.refusedFor(tt.reason); got != before+1 {
				t.Errorf("refused{%s} went from %d to %d", tt.reason, before, got)
			}
		})
	}

	t.Run("another project is answered and dropped", func(t *testing.T) {
		if got := rv.post(t, updateEvent("p2", "C2", "Bob"), testSecret, "nonce-7", now); got != http.StatusOK {
			t.Errorf("status %d", got)
		}
		if got := rv.state(t); got != want {
			t.Errorf("state %+v, want %+v", got, want)
		}
	})
	t.Run("a message event is answered and dropped", func(t *testing.T) {
		if got := rv.post(t, []byte(`{"project_id":"p1","message_inbound":{}}`), testSecret, "nonce-8", now); got != http.StatusOK {
			t.Errorf("status %d", got)
		}
		if got := rv.state(t); got != want {
			t.Errorf("state %+v, want %+v", got, want)
		}
	})
	t.Run("a redelivery is answered and stored once", func(t *testing.T) {
		var spaced bytes.Buffer
		spaced.Write(bytes.ReplaceAll(body, []byte(`,"`), []byte(`, "`)))
		for i, b := range [][]byte{body, spaced.Bytes()} {
			if got := rv.post(t, b, testSecret, "redelivery-"+string(rune('a'+i)), now); got != http.StatusOK {
				t.Fatalf("status %d", got)
			}
		}
		want.Nonces += 2
		if got := rv.state(t); got != want {
			t.Errorf("state %+v, want %+v", got, want)
		}
		if rv.obs.dups != 2 {
			t.Errorf("duplicates counted %d, want 2", rv.obs.dups)
		}
	})
	if got := rv.stored.Load(); got != 1 {
		t.Errorf("OnStored called %d times, want 1 (one new event)", got)
	}
}

// A restarted receiver still refuses a nonce the previous one accepted, and
// the events it stored are still pending.
func TestHandlerRemembersAcrossRestarts(t *testing.T) {
	first := newReceiver(t)
	now := *first.now.Load()
	body := updateEvent(testProject, "C1", "Ann")
	if got := first.post(t, body, testSecret, "n1", now); got != http.StatusOK {
		t.Fatal(got)
	}
	second := newReceiverOn(t, first.store)
	second.now.Store(&now)
	if got := second.post(t, body, testSecret, "n1", now); got != http.StatusUnauthorized {
		t.Errorf("replay to a restarted receiver: %d, want 401", got)
	}
	pending, err := second.events.Pending(context.Background(), testProject, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 || pending[0].Trigger != webhook.TriggerUpdate || pending[0].Event.Contact.ID != "C1" {
		t.Fatalf("pending = %+v", pending)
	}
	if err := second.events.Done(context.Background(), []int64{pending[0].ID}, 7); err != nil {
		t.Fatal(err)
	}
	if got := second.state(t); got.Pending != 0 {
		t.Errorf("after Done: %+v", got)
	}
	q, err := second.events.Queue(context.Background(), testProject)
	if err != nil {
		t.Fatal(err)
	}
	if q.Pending != 0 || q.DoneLastHour != 1 {
		t.Errorf("queue %+v", q)
	}
}

func TestHandlerMethod(t *testing.T) {
	rv := newReceiver(t)
	resp, err := rv.srv.Client().Get(rv.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", resp.StatusCode)
	}
}
