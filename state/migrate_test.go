package state_test

import (
	"fmt"
	"io/fs"
	"slices"
	"sync"
	"testing"

	"github.com/syncd/syncd/migrations"
	"github.com/syncd/syncd/state"
	"github.com/syncd/syncd/state/statetest"
)

// allMigrations are the embedded migration files in order, as goose
// applies them: a new migration needs no edit here.
var allMigrations = func() []string {
	files, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil || len(files) == 0 {
		panic(fmt.Sprintf("no embedded migrations: %v", err))
	}
	slices.Sort(files)
	return files
}()

func TestMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	s := statetest.OpenStore(t, statetest.NewEmptyDatabase(t))
	ctx := ctxFor(t)
	tests := []struct {
		name string
		want []string
	}{
		{"first run applies everything", allMigrations},
		{"second run applies nothing", nil},
		{"third run applies nothing", nil},
	}
	for _, tc := range tests {
		got, err := s.Migrate(ctx)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: applied %v, want %v", tc.name, got, tc.want)
		}
	}
	var where []string
	if err := s.DB().WithContext(ctx).Raw(`SELECT schemaname FROM pg_tables WHERE tablename = 'goose_db_version'`).
		Scan(&where).Error; err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(where, []string{"syncd"}) {
		t.Errorf("goose version table in schemas %v, want only syncd", where)
	}
}

// The package-level Migrate works on any *sql.DB, as `syncd migrate` uses it.
func TestMigrateOnATemplateCopyIsCurrent(t *testing.T) {
	t.Parallel()
	s := statetest.NewStore(t)
	got, err := state.Migrate(ctxFor(t), s.SQL(), nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("Migrate on a migrated copy = %v, %v; want nothing to do", got, err)
	}
}

// Two daemons starting together against a new database: each migration runs
// once, neither fails.
func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	dbURL := statetest.NewEmptyDatabase(t)
	stores := []*state.Store{statetest.OpenStore(t, dbURL), statetest.OpenStore(t, dbURL), statetest.OpenStore(t, dbURL)}
	ctx := ctxFor(t)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		applied []string
		errs    []error
	)
	for _, s := range stores {
		wg.Go(func() {
			got, err := s.Migrate(ctx)
			mu.Lock()
			defer mu.Unlock()
			applied = append(applied, got...)
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("concurrent migrate: %v", errs)
	}
	slices.Sort(applied)
	if !slices.Equal(applied, allMigrations) {
		t.Fatalf("applied %v across all runners, want each of %v once", applied, allMigrations)
	}
}
