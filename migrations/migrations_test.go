package migrations_test

import (
	"context"
	"database/sql"
	"io/fs"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"go.uber.org/goleak"

	"github.com/syncd/syncd/migrations"
	"github.com/syncd/syncd/state"
	"github.com/syncd/syncd/state/statetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var fileName = regexp.MustCompile(`^(\d{5})_[a-z0-9_]+\.sql$`)

// Versions rise and every file can be rolled back: a repeated version or a
// missing Down is a mistake caught here rather than on a production server.
func TestFilesAreWellFormed(t *testing.T) {
	t.Parallel()
	entries, err := fs.ReadDir(migrations.FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) == 0 {
		t.Fatal("no migrations embedded")
	}
	prev := 0
	for _, e := range entries {
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			t.Errorf("%s: want NNNNN_lower_snake.sql", e.Name())
			continue
		}
		// Numbers are handed out to branches in flight, so one may land
		// before a lower one; they must still rise and never repeat.
		if v, _ := strconv.Atoi(m[1]); v <= prev {
			t.Errorf("%s: version %s does not follow %05d", e.Name(), m[1], prev)
		} else {
			prev = v
		}
		b, err := fs.ReadFile(migrations.FS, e.Name())
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		for _, ann := range []string{"-- +goose Up", "-- +goose Down"} {
			if strings.Count(text, ann) != 1 {
				t.Errorf("%s: want exactly one %q", e.Name(), ann)
			}
		}
		if strings.Count(text, "-- +goose StatementBegin") != strings.Count(text, "-- +goose StatementEnd") {
			t.Errorf("%s: unbalanced StatementBegin/End", e.Name())
		}
	}
}

// Up, down to nothing, and up again leaves the same schema: the Down
// sections really undo their Up.
func TestUpDownUp(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	db, err := sql.Open("pgx", statetest.NewEmptyDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })

	up, err := state.Migrate(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	schema := snapshot(ctx, t, db)
	if !strings.Contains(schema, "syncd.journal") || !strings.Contains(schema, "crm_contacts_notify") {
		t.Fatalf("snapshot misses the schema:\n%s", schema)
	}

	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS, goose.WithTableName(state.VersionTable))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 0); err != nil {
		t.Fatalf("down: %v", err)
	}
	if left := snapshot(ctx, t, db); left != "" {
		t.Errorf("after down, still there:\n%s", left)
	}

	again, err := state.Migrate(ctx, db, nil)
	if err != nil {
		t.Fatalf("up again: %v", err)
	}
	if len(again) != len(up) {
		t.Errorf("second up applied %v, first %v", again, up)
	}
	if got := snapshot(ctx, t, db); got != schema {
		t.Errorf("schema differs after up/down/up:\nfirst:\n%s\nagain:\n%s", schema, got)
	}
}

// snapshot lists syncd's objects: tables, columns, indexes, triggers and
// functions in public and syncd, goose's own table excepted.
func snapshot(ctx context.Context, t *testing.T, db *sql.DB) string {
	t.Helper()
	rows, err := db.QueryContext(ctx, `
		SELECT 'column ' || table_schema || '.' || table_name || '.' || column_name || ' ' || data_type
			|| ' ' || is_nullable || ' ' || COALESCE(column_default, '')
		FROM information_schema.columns
		WHERE table_schema IN ('public', 'syncd') AND table_name <> 'goose_db_version'
		UNION ALL
		SELECT 'index ' || schemaname || '.' || indexdef FROM pg_indexes
		WHERE schemaname IN ('public', 'syncd') AND tablename <> 'goose_db_version'
		UNION ALL
		SELECT 'trigger ' || tgname || ' ' || pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal
		UNION ALL
		SELECT 'function ' || n.nspname || '.' || p.proname FROM pg_proc p
		JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname IN ('public', 'syncd')
		ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, "\n")
}
