package webhook_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/syncd/syncd/webhook"
)

// answerWithin bounds how long a test waits for an answer that should come
// at once; far longer than any answer takes, it only turns a hang into a
// failure.
const answerWithin = 30 * time.Second

// rawPost opens a connection to the receiver and writes a callback's
// request line and headers, declaring length bytes of body, then body,
// which may be shorter: what a client that stalls sends.
func rawPost(t *testing.T, rv *receiver, h http.Header, length int, body []byte) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", rv.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	var b strings.Builder
	fmt.Fprintf(&b, "POST / HTTP/1.1\r\nHost: syncd\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", length)
	for k, vs := range h {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(body); err != nil {
		t.Fatal(err)
	}
	return conn
}

// readAnswer reads the answer on conn.
func readAnswer(t *testing.T, conn net.Conn) *http.Response {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(answerWithin)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp
}

// until polls cond until it holds, or fails the test after answerWithin.
func until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.After(answerWithin)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("%s: not after %s", what, answerWithin)
		}
	}
}

// signed is the signature headers of body.
func signed(body []byte, nonce string, at time.Time) http.Header {
	h := http.Header{}
	webhook.Sign(h, []byte(testSecret), body, nonce, at)
	return h
}

// What the headers can tell is refused before a byte of the body is read:
// the answer comes while the body the request declares is still to be
// sent, and the connection is closed, the body unread.
func TestRefusedBeforeTheBodyIsRead(t *testing.T) {
	rv := newReceiverWith(t, freshStore(t), func(c *webhook.Config) { c.BodyTimeout = time.Hour })
	now := *rv.now.Load()
	body := updateEvent(testProject, "C1", "Ann")
	unsigned := http.Header{}
	malformed := signed(body, "n1", now)
	malformed.Set(webhook.HeaderSignature, "not base64!")
	tests := []struct {
		name   string
		h      http.Header
		length int
		status int
		reason string
	}{
		{"unsigned", unsigned, webhook.MaxBody, http.StatusUnauthorized, webhook.ReasonMissingSignature},
		{"malformed signature", malformed, webhook.MaxBody, http.StatusUnauthorized, webhook.ReasonBadSignature},
		{"stale", signed(body, "n2", now.Add(-webhook.MaxSkew-time.Minute)), webhook.MaxBody, http.StatusUnauthorized, webhook.ReasonStale},
		{"declared too large", signed(body, "n3", now), webhook.MaxBody + 1, http.StatusRequestEntityTooLarge, webhook.ReasonTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := rv.obs.refusedFor(tt.reason)
			resp := readAnswer(t, rawPost(t, rv, tt.h, tt.length, nil))
			if resp.StatusCode != tt.status || !resp.Close {
				t.Errorf("status %d, close %v; want %d and the connection closed", resp.StatusCode, resp.Close, tt.status)
			}
			if got := rv.obs.refusedFor(tt.reason); got != before+1 {
				t.Errorf("refused{%s} went from %d to %d", tt.reason, before, got)
			}
		})
	}
	if got := rv.state(t); got != (tables{}) {
		t.Errorf("state %+v, want nothing stored", got)
	}
}

// A callback that comes while MaxInFlight others are under way is answered
// 503 at once, unread, for Sinch to send again; the one under way is not
// disturbed.
func TestBusyIsAnsweredAtOnce(t *testing.T) {
	rv := newReceiverWith(t, freshStore(t), func(c *webhook.Config) { c.MaxInFlight = 1; c.BodyTimeout = time.Hour })
	now := *rv.now.Load()
	first := updateEvent(testProject, "C1", "Ann")
	held := rawPost(t, rv, signed(first, "n1", now), len(first), first[:len(first)-1])
	until(t, "the first callback takes its place", func() bool { return rv.h.InFlight() == 1 })

	second := updateEvent(testProject, "C2", "Bob")
	resp := readAnswer(t, rawPost(t, rv, signed(second, "n2", now), len(second), nil))
	if resp.StatusCode != http.StatusServiceUnavailable || !resp.Close || resp.Header.Get("Retry-After") == "" {
		t.Errorf("status %d, close %v, Retry-After %q; want 503, closed, a Retry-After", resp.StatusCode, resp.Close, resp.Header.Get("Retry-After"))
	}
	if n := rv.obs.refusedFor(webhook.ReasonBusy); n != 1 {
		t.Errorf("refused{busy} = %d, want 1", n)
	}

	if _, err := held.Write(first[len(first)-1:]); err != nil {
		t.Fatal(err)
	}
	if resp := readAnswer(t, held); resp.StatusCode != http.StatusOK {
		t.Fatalf("the first callback: %d", resp.StatusCode)
	}
	if got, want := rv.state(t), (tables{Events: 1, Nonces: 1, Pending: 1}); got != want {
		t.Errorf("state %+v, want %+v", got, want)
	}
	until(t, "the place is freed", func() bool { return rv.h.InFlight() == 0 })
	if got := rv.post(t, second, testSecret, "n3", now); got != http.StatusOK {
		t.Errorf("the second callback, sent again: %d", got)
	}
}

// A body that does not arrive within BodyTimeout is refused, and its place
// is freed.
func TestSlowBodyIsRefused(t *testing.T) {
	rv := newReceiverWith(t, freshStore(t), func(c *webhook.Config) { c.MaxInFlight = 1; c.BodyTimeout = 50 * time.Millisecond })
	now := *rv.now.Load()
	body := updateEvent(testProject, "C1", "Ann")
	resp := readAnswer(t, rawPost(t, rv, signed(body, "n1", now), len(body), body[:10]))
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("status %d, want 408", resp.StatusCode)
	}
	if n := rv.obs.refusedFor(webhook.ReasonSlowBody); n != 1 {
		t.Errorf("refused{slow_body} = %d, want 1", n)
	}
	until(t, "the slow callback's place is freed", func() bool { return rv.h.InFlight() == 0 })
	if got := rv.post(t, body, testSecret, "n2", now); got != http.StatusOK {
		t.Errorf("the next callback: %d", got)
	}
}

// Headers past MaxHeaderBytes are refused by the listener itself.
func TestHeadersTooLarge(t *testing.T) {
	rv := newReceiver(t)
	h := signed([]byte("{}"), "n1", *rv.now.Load())
	h.Set("X-Padding", strings.Repeat("x", 2*webhook.MaxHeaderBytes))
	resp := readAnswer(t, rawPost(t, rv, h, 2, []byte("{}")))
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status %d, want 431", resp.StatusCode)
	}
}
