package state

import (
	"context"
	"database/sql"
	"fmt"
	"path"

	"github.com/jackc/pgx/v5"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"go.uber.org/zap"

	"github.com/syncd/syncd/lease"
	"github.com/syncd/syncd/migrations"
)

// VersionTable is where goose records applied migrations: in syncd's schema,
// beside the rest of its state, so the CRM's public schema stays the user's.
const VersionTable = "syncd.goose_db_version"

// Migrate applies the embedded migrations that db has not seen yet and
// returns the file names it applied, in order; none when the schema is
// current. Concurrent callers (two daemons starting together) are serialised
// by a PostgreSQL advisory lock.
func Migrate(ctx context.Context, db *sql.DB, log *zap.Logger) ([]string, error) {
	if log == nil {
		log = zap.NewNop()
	}
	// goose creates its version table before the first migration runs, so the
	// schema that holds it has to exist already.
	if err := ensureSchema(ctx, db, "syncd"); err != nil {
		return nil, err
	}
	p, err := newMigrationProvider(db, log)
	if err != nil {
		return nil, err
	}
	results, err := p.Up(ctx)
	applied := make([]string, 0, len(results))
	for _, r := range results {
		if r.Error != nil {
			continue
		}
		name := path.Base(r.Source.Path)
		applied = append(applied, name)
		log.Info("migration applied", zap.Int64("version", r.Source.Version),
			zap.String("name", name), zap.Duration("took", r.Duration))
	}
	if err != nil {
		return applied, fmt.Errorf("state: migrate: %w", err)
	}
	return applied, nil
}

// Migrate applies the embedded migrations; see the package-level Migrate.
func (s *Store) Migrate(ctx context.Context) ([]string, error) {
	return Migrate(ctx, s.db, s.log)
}

func newMigrationProvider(db *sql.DB, log *zap.Logger) (*goose.Provider, error) {
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(lease.Named("syncd:migrate").Int64()),
		// Poll every second for up to five minutes: a second daemon should start
		// right after the first one's migrations, not goose's default 5 s later.
		lock.WithLockTimeout(1, 300),
	)
	if err != nil {
		return nil, fmt.Errorf("state: migrate: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS,
		goose.WithTableName(VersionTable),
		goose.WithSessionLocker(locker),
		// Only the embedded files: a Go migration registered globally by some
		// other package must not sneak into syncd's schema history.
		goose.WithDisableGlobalRegistry(true),
		goose.WithLogger(gooseLogger{log.Named("goose")}),
	)
	if err != nil {
		return nil, fmt.Errorf("state: migrate: %w", err)
	}
	return p, nil
}

// ensureSchema creates schema name unless it exists. It looks before it
// creates because CREATE SCHEMA IF NOT EXISTS still demands CREATE on the
// database, which a least-privilege role whose schema a DBA made lacks.
func ensureSchema(ctx context.Context, db *sql.DB, name string) error {
	exists := func() (bool, error) {
		var ok bool
		err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, name).Scan(&ok)
		if err != nil {
			return false, fmt.Errorf("state: migrate: look up schema %s: %w", name, err)
		}
		return ok, nil
	}
	if ok, err := exists(); err != nil || ok {
		return err
	}
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{name}.Sanitize()); err != nil {
		// IF NOT EXISTS is no guard against a concurrent creator: the loser
		// of that race gets a unique violation. The schema is there all the
		// same.
		if ok, _ := exists(); ok {
			return nil
		}
		return fmt.Errorf("state: migrate: create schema %s: %w", name, err)
	}
	return nil
}

type gooseLogger struct{ log *zap.Logger }

func (l gooseLogger) Printf(format string, args ...any) { l.log.Sugar().Infof(format, args...) }

// Fatalf must not exit: a library has no business ending the daemon. goose's
// Provider reports failures as errors and is not expected to call it.
func (l gooseLogger) Fatalf(format string, args ...any) { l.log.Sugar().Errorf(format, args...) }

// PendingMigrations counts the embedded migrations not yet applied, without
// applying anything (and without creating goose's table on a fresh database).
func (s *Store) PendingMigrations(ctx context.Context) (int, error) {
	var exists bool
	if err := s.db.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, VersionTable).Scan(&exists); err != nil {
		return 0, fmt.Errorf("state: look for %s: %w", VersionTable, err)
	}
	p, err := newMigrationProvider(s.db, s.log)
	if err != nil {
		return 0, err
	}
	if !exists {
		return len(p.ListSources()), nil
	}
	statuses, err := p.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("state: migration status: %w", err)
	}
	pending := 0
	for _, st := range statuses {
		if st.State == goose.StatePending {
			pending++
		}
	}
	return pending, nil
}

// NotMigratedError says that syncd's schema lacks migrations this binary
// carries: every command but migrate needs them, and without this check the
// first query fails with `relation "syncd.runs" does not exist`.
type NotMigratedError struct {
	Pending int // migrations not yet applied
}

func (e *NotMigratedError) Error() string {
	return fmt.Sprintf("the database is not migrated (%s pending): run syncd migrate", plural(e.Pending, "migration"))
}

// CheckMigrated returns a *NotMigratedError when migrations are pending.
func (s *Store) CheckMigrated(ctx context.Context) error {
	pending, err := s.PendingMigrations(ctx)
	if err != nil {
		return err
	}
	if pending > 0 {
		return &NotMigratedError{Pending: pending}
	}
	return nil
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
