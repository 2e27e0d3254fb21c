package crm_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/state/statetest"
)

// The README's recipes for a CRM of the user's own shape work as written on
// a table whose key is not called external_id: the view reads as the
// contract, the trigger keeps modified_at moving, and the notify trigger
// names the row, with the operation and both ids, without breaking the
// write.
func TestReadmeRecipesForAUsersOwnTable(t *testing.T) {
	t.Parallel()
	dbURL := statetest.NewDatabase(t)
	s := openSource(t, dbURL)
	ctx := ctxFor(t)
	mustExec(t, s, `CREATE SCHEMA crm`)
	mustExec(t, s, `CREATE TABLE crm.customers (
		id bigint PRIMARY KEY, first_name text, last_name text, email text, mobile text,
		locale text, tier text, modified_at timestamptz NOT NULL DEFAULT now(), archived_at timestamptz)`)
	blocks := statetest.ReadmeSQL(t, "crm.customers")
	if len(blocks) < 3 {
		t.Fatalf("README.md has %d SQL blocks for crm.customers, want the view, the touch trigger and the notify trigger", len(blocks))
	}
	for _, b := range blocks {
		mustExec(t, s, b)
	}
	check, err := s.CheckSource(ctx, crm.Source{Relation: "crm.v_sinch_contacts"})
	if err != nil || !check.OK() || len(check.Warnings) > 0 {
		t.Fatalf("the README's view against the contract: %+v, %v", check, err)
	}

	listener, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = listener.Close(context.Background()) })
	if _, err := listener.Exec(ctx, "LISTEN syncd_crm_changed"); err != nil {
		t.Fatal(err)
	}
	past := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		name string
		sql  string
		args []any
		want []crm.Change
	}{
		{"insert", `INSERT INTO crm.customers (id, first_name, modified_at) VALUES (42, 'Ada', $1)`, []any{past},
			[]crm.Change{{Op: crm.OpInsert, NewID: "42"}}},
		{"update", `UPDATE crm.customers SET first_name = 'Grace' WHERE id = 42`, nil,
			[]crm.Change{{Op: crm.OpUpdate, OldID: "42", NewID: "42"}}},
		// Touches nothing, notifies nothing: the rename's is the next one.
		{"no row", `DELETE FROM crm.customers WHERE id = 42 AND false`, nil, nil},
		{"rename", `UPDATE crm.customers SET id = 43 WHERE id = 42`, nil,
			[]crm.Change{{Op: crm.OpUpdate, OldID: "42", NewID: "43"}}},
		{"hard delete", `DELETE FROM crm.customers WHERE id = 43`, nil,
			[]crm.Change{{Op: crm.OpDelete, OldID: "43"}}},
	}
	for _, st := range steps {
		mustExec(t, s, st.sql, st.args...)
		if st.name == "update" {
			var modified time.Time
			if err := s.DB().WithContext(ctx).Raw(`SELECT updated_at FROM crm.v_sinch_contacts WHERE external_id = '42'`).
				Row().Scan(&modified); err != nil {
				t.Fatal(err)
			}
			if !modified.After(past) {
				t.Errorf("updated_at stayed %v after an edit that did not set it", modified)
			}
		}
		for _, want := range st.want {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			n, err := listener.WaitForNotification(wctx)
			cancel()
			if err != nil {
				t.Fatalf("%s: waiting for %+v: %v", st.name, want, err)
			}
			if got := crm.ParseChange(n.Payload); got != want {
				t.Errorf("%s: notified %q (%+v), want %+v", st.name, n.Payload, got, want)
			}
		}
	}
}

// syncd.notify_changed() takes a prefix for a view that maps id 42 to
// external_id 'cust-42', and a table without the key column named still
// takes writes, notifying the vague "".
func TestNotifyChangedArguments(t *testing.T) {
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
	tests := []struct {
		name    string
		trigger string
		want    crm.Change
	}{
		{"prefix", `syncd.notify_changed('id', 'cust-')`, crm.Change{Op: crm.OpUpdate, OldID: "cust-1", NewID: "cust-2"}},
		{"no such column", `syncd.notify_changed('customer_no')`, crm.Change{}},
	}
	for i, tt := range tests {
		table := pgx.Identifier{"t" + string(rune('a'+i))}.Sanitize()
		mustExec(t, s, `CREATE TABLE `+table+` (id int PRIMARY KEY)`)
		mustExec(t, s, `INSERT INTO `+table+` VALUES (1)`)
		mustExec(t, s, `CREATE TRIGGER n AFTER UPDATE ON `+table+` FOR EACH ROW EXECUTE FUNCTION `+tt.trigger)
		mustExec(t, s, `UPDATE `+table+` SET id = 2`)
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		n, err := listener.WaitForNotification(wctx)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := crm.ParseChange(n.Payload); got != tt.want {
			t.Errorf("%s: notified %q (%+v), want %+v", tt.name, n.Payload, got, tt.want)
		}
	}
}
