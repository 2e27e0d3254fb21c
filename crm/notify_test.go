package crm_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/state/statetest"
)

func TestCRMChangesAreNotified(t *testing.T) {
	t.Parallel()
	dbURL := statetest.NewDatabase(t)
	s := openSource(t, dbURL)
	ctx := ctxFor(t)
	listener, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = listener.Close(context.Background()) })
	if _, err := listener.Exec(ctx, "LISTEN syncd_crm_changed"); err != nil {
		t.Fatal(err)
	}

	upsert := func(id string) func() {
		return func() {
			if err := s.UpsertRecords(ctx, contacts, []crm.Record{{ExternalID: id}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	exec := func(query string) func() { return func() { mustExec(t, s, query) } }
	ins := func(id string) crm.Change { return crm.Change{Op: crm.OpInsert, NewID: id} }
	upd := func(old, id string) crm.Change { return crm.Change{Op: crm.OpUpdate, OldID: old, NewID: id} }
	steps := []struct {
		name string
		do   func()
		want []crm.Change
	}{
		// INSERT ... ON CONFLICT DO UPDATE fires the insert trigger.
		{"insert", upsert("n1"), []crm.Change{ins("n1")}},
		{"another insert", upsert("n2"), []crm.Change{ins("n2")}},
		// Notifications arrive in commit order, so the first one after a
		// no-op update shows whether the no-op sent one.
		{"no-op update is silent", func() {
			exec(`UPDATE crm_contacts SET email = email WHERE external_id = 'n1'`)()
			exec(`UPDATE crm_contacts SET email = 'x@example.com' WHERE external_id = 'n2'`)()
		}, []crm.Change{upd("n2", "n2")}},
		{"renamed id names both", exec(`UPDATE crm_contacts SET external_id = 'n3' WHERE external_id = 'n2'`), []crm.Change{upd("n2", "n3")}},
		{"one per row per transaction", exec(`DO $$ BEGIN
			UPDATE crm_contacts SET email = 'a@example.com' WHERE external_id = 'n3';
			UPDATE crm_contacts SET email = 'b@example.com' WHERE external_id = 'n3';
			INSERT INTO crm_contacts (external_id) VALUES ('n4');
		END $$`), []crm.Change{upd("n3", "n3"), ins("n4")}},
		{"delete", exec(`DELETE FROM crm_contacts WHERE external_id = 'n1'`), []crm.Change{{Op: crm.OpDelete, OldID: "n1"}}},
		{"truncate says something changed", exec(`TRUNCATE crm_contacts`), []crm.Change{{}}},
	}
	for _, st := range steps {
		st.do()
		for _, want := range st.want {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			n, err := listener.WaitForNotification(wctx)
			cancel()
			if err != nil {
				t.Fatalf("%s: waiting for %+v: %v", st.name, want, err)
			}
			if got := crm.ParseChange(n.Payload); n.Channel != "syncd_crm_changed" || got != want {
				t.Fatalf("%s: got %s %q (%+v), want %+v", st.name, n.Channel, n.Payload, got, want)
			}
		}
	}
}

// updated_at follows writes that do not set it and keeps what writes set.
func TestUpdatedAtIsTouchedUnlessSet(t *testing.T) {
	t.Parallel()
	s := newSource(t)
	past := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := s.UpsertRecords(ctxFor(t), contacts, []crm.Record{{ExternalID: "u", UpdatedAt: past}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		update string
		check  func(before, after time.Time) bool
	}{
		{"no-op keeps it", `UPDATE crm_contacts SET email = email`, func(b, a time.Time) bool { return a.Equal(b) }},
		{"change without updated_at moves it to now", `UPDATE crm_contacts SET email = 'e@example.com'`,
			func(b, a time.Time) bool { return a.After(b) && time.Since(a) < time.Hour }},
		{"explicit updated_at is kept", `UPDATE crm_contacts SET email = 'f@example.com', updated_at = '2021-01-01Z'`,
			func(b, a time.Time) bool { return a.Equal(time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)) }},
	}
	read := func() time.Time {
		t.Helper()
		recs, err := s.RecordsByExternalID(ctxFor(t), crm.Source{Relation: contacts}, []string{"u"})
		if err != nil || len(recs) != 1 {
			t.Fatalf("read: %v %v", recs, err)
		}
		return recs[0].UpdatedAt
	}
	for _, tc := range tests {
		before := read()
		mustExec(t, s, tc.update)
		if after := read(); !tc.check(before, after) {
			t.Errorf("%s: updated_at %v -> %v", tc.name, before, after)
		}
	}
}

func TestParseChange(t *testing.T) {
	tests := []struct {
		payload string
		want    crm.Change
		renamed bool
	}{
		{`{"op" : "UPDATE", "old" : "a", "new" : "b"}`, crm.Change{Op: crm.OpUpdate, OldID: "a", NewID: "b"}, true},
		{`{"op" : "UPDATE", "old" : "a", "new" : "a"}`, crm.Change{Op: crm.OpUpdate, OldID: "a", NewID: "a"}, false},
		{`{"op" : "DELETE", "old" : "a", "new" : null}`, crm.Change{Op: crm.OpDelete, OldID: "a"}, false},
		{`crm-7`, crm.Change{NewID: "crm-7"}, false}, // a bare id, from a user's own trigger
		{``, crm.Change{}, false},
		{`{not json`, crm.Change{}, false},
	}
	for _, tt := range tests {
		got := crm.ParseChange(tt.payload)
		if got != tt.want || got.Renamed() != tt.renamed {
			t.Errorf("ParseChange(%q) = %+v (renamed %v), want %+v (%v)", tt.payload, got, got.Renamed(), tt.want, tt.renamed)
		}
	}
}
