// Package statetest gives tests a private, fully migrated PostgreSQL database in
// milliseconds: the migrations run once into a template database, and every
// test gets a copy of it (CREATE DATABASE ... TEMPLATE) that is dropped when
// the test ends.
//
// The server comes from SYNCD_TEST_DATABASE_URL (a postgres:// URL whose role
// may create databases), default DefaultAdminURL. A server that cannot be
// reached fails the test: skipping would let a broken setup pass CI.
package statetest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/syncd/syncd/lease"
	"github.com/syncd/syncd/migrations"
	"github.com/syncd/syncd/state"
)

// EnvAdminURL names the variable that points tests at a PostgreSQL server.
const EnvAdminURL = "SYNCD_TEST_DATABASE_URL"

// DefaultAdminURL is used when EnvAdminURL is unset.
const DefaultAdminURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// setupTimeout bounds everything statetest does against the server in one
// call, a template build included, so a wedged server fails the test
// instead of hanging it until the go test deadline.
const setupTimeout = 2 * time.Minute

var template struct {
	mu    sync.Mutex
	ready string // name of the template once this process has seen it exist
}

// AdminURL is the server tests run against.
func AdminURL() string {
	if u := os.Getenv(EnvAdminURL); u != "" {
		return u
	}
	return DefaultAdminURL
}

// NewDatabase creates a migrated database for this test alone and returns
// its URL. The database is dropped, connections and all, when the test ends.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	admin := adminURL(tb)
	tmpl, err := ensureTemplate(ctx, admin.String())
	if err != nil {
		tb.Fatalf("statetest: prepare template database on %s: %v (set %s to a server where the role may CREATE DATABASE)",
			redact(admin), err, EnvAdminURL)
	}
	return createDatabase(ctx, tb, admin, tmpl)
}

// NewEmptyDatabase creates an unmigrated database for this test alone, for
// tests of the migrations themselves, and returns its URL.
func NewEmptyDatabase(tb testing.TB) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	return createDatabase(ctx, tb, adminURL(tb), "template0")
}

func adminURL(tb testing.TB) *url.URL {
	tb.Helper()
	u, err := url.Parse(AdminURL())
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		tb.Fatalf("statetest: %s must be a postgres:// URL", EnvAdminURL)
	}
	return u
}

func createDatabase(ctx context.Context, tb testing.TB, admin *url.URL, tmpl string) string {
	tb.Helper()
	name := "syncd_test_" + randomHex(8)
	if err := adminExec(ctx, admin.String(), "CREATE DATABASE "+quote(name)+" TEMPLATE "+quote(tmpl)); err != nil {
		tb.Fatalf("statetest: create database %s from %s on %s: %v", name, tmpl, redact(admin), err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// FORCE: a test that failed halfway may have left sessions open.
		if err := adminExec(ctx, admin.String(), "DROP DATABASE IF EXISTS "+quote(name)+" WITH (FORCE)"); err != nil {
			tb.Errorf("statetest: drop database %s: %v", name, err)
		}
	})
	u := *admin
	u.Path = "/" + name
	return u.String()
}

// NewStore opens a Store on a fresh database (see NewDatabase), logging to
// the test, and closes it when the test ends.
func NewStore(tb testing.TB) *state.Store {
	tb.Helper()
	return OpenStore(tb, NewDatabase(tb))
}

// OpenStore opens another Store on an existing database, as a second
// process would, and closes it when the test ends.
func OpenStore(tb testing.TB, databaseURL string) *state.Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	s, err := state.Open(ctx, databaseURL, zaptest.NewLogger(tb))
	if err != nil {
		tb.Fatalf("statetest: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("statetest: close store: %v", err)
		}
	})
	return s
}

// TemplateName is the template database for the current migrations: named by
// their content, so changing a migration builds a new template rather than
// handing tests a stale schema.
func TemplateName() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(migrations.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrations.FS, path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", path, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", err
	}
	return "syncd_tmpl_" + hex.EncodeToString(h.Sum(nil))[:16], nil
}

func ensureTemplate(ctx context.Context, admin string) (string, error) {
	name, err := TemplateName()
	if err != nil {
		return "", err
	}
	template.mu.Lock()
	defer template.mu.Unlock()
	if template.ready == name {
		return name, nil
	}

	db, err := openAdmin(ctx, admin)
	if err != nil {
		return "", err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close()

	// Test binaries of several packages run in parallel and may all find the
	// template missing; the lock lets one build it while the others wait. Its
	// name is the one the package had before it was statetest, so that test
	// binaries of older trees on the same server wait on the same lock.
	key := lease.Named("syncd/crmtest/template").Int64()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", key); err != nil {
		return "", fmt.Errorf("wait for template lock: %w", err)
	}
	defer func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", key)
	}()

	var exists bool
	if err := conn.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", err
	}
	if !exists {
		if err := buildTemplate(ctx, conn, admin, name); err != nil {
			return "", err
		}
	}
	template.ready = name
	return name, nil
}

// buildTemplate migrates a scratch database and only then renames it to the
// template's name, so a build that dies halfway never leaves a template that
// looks complete.
func buildTemplate(ctx context.Context, conn *sql.Conn, admin, name string) error {
	scratch := name + "_build"
	if _, err := conn.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quote(scratch)+" WITH (FORCE)"); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, "CREATE DATABASE "+quote(scratch)+" TEMPLATE template0"); err != nil {
		return err
	}
	u, err := url.Parse(admin)
	if err != nil {
		return err
	}
	u.Path = "/" + scratch
	db, err := openAdmin(ctx, u.String())
	if err != nil {
		return err
	}
	_, merr := state.Migrate(ctx, db, zap.NewNop())
	if cerr := db.Close(); merr == nil {
		merr = cerr
	}
	if merr != nil {
		return fmt.Errorf("migrate %s: %w", scratch, merr)
	}
	// CREATE DATABASE ... TEMPLATE fails while anyone is connected to the
	// template; refusing connections keeps stray clients from breaking it.
	for _, stmt := range []string{
		"ALTER DATABASE " + quote(scratch) + " RENAME TO " + quote(name),
		"ALTER DATABASE " + quote(name) + " WITH IS_TEMPLATE true ALLOW_CONNECTIONS false",
	} {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	return nil
}

func openAdmin(ctx context.Context, dsn string) (*sql.DB, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			return nil, err
		}
		return nil, fmt.Errorf("server unreachable: %w", err)
	}
	return db, nil
}

func adminExec(ctx context.Context, admin, stmt string) error {
	db, err := openAdmin(ctx, admin)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, stmt)
	return err
}

func quote(ident string) string { return `"` + strings.ReplaceAll(ident, `"`, `""`) + `"` }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func redact(u *url.URL) string {
	c := *u
	if c.User != nil {
		if _, ok := c.User.Password(); ok {
			c.User = url.UserPassword(c.User.Username(), "xxxxx")
		}
	}
	return c.String()
}
