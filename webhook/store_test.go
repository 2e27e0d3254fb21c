package webhook

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/syncd/syncd/state/statetest"
)

// Storing new events notifies NotifyChannel with their project, in the
// storing transaction, so that whichever syncd holds the project lock hears
// of them; a callback that stores nothing new (a duplicate) notifies
// nothing.
func TestStoringEventsNotifies(t *testing.T) {
	t.Parallel()
	dbURL := statetest.NewDatabase(t)
	store := statetest.OpenStore(t, dbURL)
	rv := newReceiverOn(t, NewStore(store.DB()))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	listener, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = listener.Close(context.Background()) })
	if _, err := listener.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		t.Fatal(err)
	}
	// A marker sent after a step: the next notification shows whether the
	// step sent one (notifications arrive in commit order).
	marker := func() {
		t.Helper()
		if err := store.DB().Exec(`SELECT pg_notify(?, 'marker')`, NotifyChannel).Error; err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name  string
		nonce string
		body  []byte
		want  []string
	}{
		{"a new event", "n1", updateEvent(testProject, "C1", "Ada"), []string{testProject, "marker"}},
		{"its redelivery", "n2", updateEvent(testProject, "C1", "Ada"), []string{"marker"}},
		{"another event", "n3", updateEvent(testProject, "C2", "Grace"), []string{testProject, "marker"}},
	}
	for _, st := range steps {
		if got := rv.post(t, st.body, testSecret, st.nonce, time.Now()); got != http.StatusOK {
			t.Fatalf("%s: answered %d", st.name, got)
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
