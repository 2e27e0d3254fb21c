package crm_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/crm/crmtest"
)

// readmeSQL returns the README's SQL blocks that mention table, in order.
func readmeSQL(t *testing.T, table string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	parts := strings.Split(string(data), "```sql\n")
	for _, p := range parts[1:] {
		block, _, ok := strings.Cut(p, "```")
		if !ok {
			t.Fatal("README.md: an unterminated sql block")
		}
		if strings.Contains(block, table) {
			blocks = append(blocks, block)
		}
	}
	return blocks
}

// The README's recipes for a CRM of the user's own shape work as written on
// a table whose key is not called external_id: the view reads as the
// contract, the trigger keeps modified_at moving, and the notify trigger
// names the row without breaking the write.
func TestReadmeRecipesForAUsersOwnTable(t *testing.T) {
	t.Parallel()
	dbURL := crmtest.NewDatabase(t)
	s := crmtest.OpenStore(t, dbURL)
	ctx := ctxFor(t)
	mustExec(t, s, `CREATE SCHEMA crm`)
	mustExec(t, s, `CREATE TABLE crm.customers (
		id bigint PRIMARY KEY, first_name text, last_name text, email text, mobile text,
		locale text, tier text, modified_at timestamptz NOT NULL DEFAULT now(), archived_at timestamptz)`)
	blocks := readmeSQL(t, "crm.customers")
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
	mustExec(t, s, `INSERT INTO crm.customers (id, first_name, modified_at) VALUES (42, 'Ada', $1)`, past)
	mustExec(t, s, `UPDATE crm.customers SET first_name = 'Grace' WHERE id = 42`)
	mustExec(t, s, `DELETE FROM crm.customers WHERE id = 42 AND false`) // touches nothing, notifies nothing
	for _, want := range []string{"42", "42"} {                         // the insert, then the update (old and new folded)
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		n, err := listener.WaitForNotification(wctx)
		cancel()
		if err != nil {
			t.Fatalf("waiting for %q: %v", want, err)
		}
		if n.Payload != want {
			t.Errorf("notified %q, want %q", n.Payload, want)
		}
	}
	var modified time.Time
	if err := s.DB().WithContext(ctx).Raw(`SELECT updated_at FROM crm.v_sinch_contacts WHERE external_id = '42'`).
		Row().Scan(&modified); err != nil {
		t.Fatal(err)
	}
	if !modified.After(past) {
		t.Errorf("updated_at stayed %v after an edit that did not set it", modified)
	}
}
