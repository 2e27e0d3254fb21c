package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/stdlib"
	"go.uber.org/zap"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	gormlogger "gorm.io/gorm/logger"
)

// Store is syncd's handle on its PostgreSQL database: the one pool of the
// process, which the CRM reader (crm.New), the leases and the leader
// elector share through SQL, and syncd's own state on it. It is safe for
// concurrent use.
type Store struct {
	gorm *gorm.DB
	db   *sql.DB
	log  *zap.Logger
}

const (
	// A daemon needs few connections: one held by the project lock, one for
	// reads, a few for journal writes while calls to Sinch are in flight.
	// Keeping the pool small also leaves room on servers shared with the CRM.
	maxOpenConns = 10
	maxIdleConns = 4
	// An unreachable host must not hang startup for the kernel's TCP timeout.
	defaultPingTimeout = 15 * time.Second
)

// Open connects to PostgreSQL and checks that the server answers. An error
// names the host, database and user but never the password.
func Open(ctx context.Context, databaseURL string, log *zap.Logger) (*Store, error) {
	if log == nil {
		log = zap.NewNop()
	}
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return nil, redactErr(fmt.Errorf("state: invalid database URL: %w", err), databaseURL)
	}
	// On cancel, ask the server to stop the statement too (by default pgx only
	// drops the socket): a backend waiting in pg_advisory_lock would otherwise
	// go on waiting, and take the lock, for a client that has gone.
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: 2 * time.Second}
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = applicationName()
	}
	// A client host that vanishes (power lost, a partition) leaves its
	// sessions, and the locks they hold, on the server until TCP gives up on
	// them, two hours by default. These make the server give up within about
	// 11 s, so that a standby takes a project over within seconds. TCP only;
	// the URL may set them otherwise.
	for k, v := range sessionKeepalive {
		if _, set := cfg.RuntimeParams[k]; !set {
			cfg.RuntimeParams[k] = v
		}
	}
	target := fmt.Sprintf("postgres at %s:%d database %q user %q", cfg.Host, cfg.Port, cfg.Database, cfg.User)

	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(maxOpenConns)
	db.SetMaxIdleConns(maxIdleConns)
	db.SetConnMaxIdleTime(5 * time.Minute)

	pingCtx := ctx
	if _, ok := ctx.Deadline(); !ok && cfg.ConnectTimeout == 0 {
		var cancel context.CancelFunc
		pingCtx, cancel = context.WithTimeout(ctx, defaultPingTimeout)
		defer cancel()
	}
	if err := db.PingContext(pingCtx); err != nil {
		_ = db.Close()
		return nil, redactErr(fmt.Errorf("state: cannot reach %s: %w", target, err), databaseURL, cfg.Password)
	}

	g, err := gorm.Open(postgres.New(postgres.Config{Conn: db}), &gorm.Config{
		Logger:               newGormLogger(log),
		DisableAutomaticPing: true, // pinged above, with the caller's context
	})
	if err != nil {
		_ = db.Close()
		return nil, redactErr(fmt.Errorf("state: open %s: %w", target, err), databaseURL, cfg.Password)
	}
	log.Debug("connected to postgres", zap.String("host", cfg.Host), zap.Uint16("port", cfg.Port),
		zap.String("database", cfg.Database), zap.String("user", cfg.User))
	return &Store{gorm: g, db: db, log: log}, nil
}

// sessionKeepalive is what a session asks of the server's TCP keepalives: a
// probe after 5 s of silence, then every 2 s, three unanswered ones ending
// the session; tcp_user_timeout bounds unacknowledged sends the same way.
var sessionKeepalive = map[string]string{
	"tcp_keepalives_idle":     "5",
	"tcp_keepalives_interval": "2",
	"tcp_keepalives_count":    "3",
	"tcp_user_timeout":        "11000",
}

// ServeProjects sizes the pool for a process that syncs that many projects
// at once (syncd run with a projects: list): each project's run holds its
// lock's session and reads and writes on others, and one project's run must
// never wait for connections another's holds; one more is the process's
// election session.
func (s *Store) ServeProjects(projects int) {
	projects = max(1, projects)
	s.db.SetMaxOpenConns(maxOpenConns*projects + 1)
	s.db.SetMaxIdleConns(maxIdleConns*projects + 1)
}

// Close closes the connection pool. A Lock still held keeps its connection
// until it is released.
func (s *Store) Close() error { return s.db.Close() }

// DB is the gorm handle on the pool the Store uses, for tests and tools that
// read syncd's tables; the package doc says where the Store itself does
// without gorm and why.
func (s *Store) DB() *gorm.DB { return s.gorm }

// SQL is the pool itself, for what works beside syncd's state on the same
// database: the CRM reader (crm.New), the leases, the leader elector. The
// Store owns it: Close closes it.
func (s *Store) SQL() *sql.DB { return s.db }

// applicationName identifies this process in pg_stat_activity, which is what
// a lease.HeldError reports about the holder of a lock; the backend pid alone
// does not say which host or process to look at.
func applicationName() string {
	host, _ := os.Hostname()
	name := fmt.Sprintf("syncd host=%s pid=%d", host, os.Getpid())
	// PostgreSQL truncates to NAMEDATALEN-1 bytes anyway; cut at a rune
	// boundary so the name stays valid UTF-8.
	for len(name) > 63 {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	return name
}

// redactedError hides secrets from Error() while keeping the chain for
// errors.Is (a cancelled context must still be recognisable).
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

var kvPassword = regexp.MustCompile(`password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)`)

// redactErr removes the password of databaseURL from err's message. pgx
// already redacts the connection strings it prints; this also covers the
// password turning up anywhere else, such as a server message echoing it.
func redactErr(err error, databaseURL string, known ...string) error {
	msg := err.Error()
	secrets := known
	if u, perr := url.Parse(databaseURL); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			secrets = append(secrets, p, url.QueryEscape(p), url.PathEscape(p))
		}
	}
	for _, m := range kvPassword.FindAllStringSubmatch(databaseURL, -1) {
		secrets = append(secrets, strings.Trim(m[1], "'"))
	}
	if p := os.Getenv("PGPASSWORD"); p != "" {
		secrets = append(secrets, p)
	}
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
	}
	msg = kvPassword.ReplaceAllString(msg, "password=xxxxx")
	return &redactedError{msg: msg, err: err}
}

// gormLogger routes gorm's messages to zap. Query failures are logged at debug
// only: they are returned to the caller, who decides what they mean.
type gormLogger struct {
	log   *zap.Logger
	level gormlogger.LogLevel
	slow  time.Duration
}

func newGormLogger(log *zap.Logger) gormlogger.Interface {
	return &gormLogger{log: log.Named("gorm"), level: gormlogger.Warn, slow: time.Second}
}

func (l *gormLogger) LogMode(level gormlogger.LogLevel) gormlogger.Interface {
	c := *l
	c.level = level
	return &c
}

func (l *gormLogger) Info(_ context.Context, msg string, args ...any) {
	if l.level >= gormlogger.Info {
		l.log.Sugar().Infof(msg, args...)
	}
}

func (l *gormLogger) Warn(_ context.Context, msg string, args ...any) {
	if l.level >= gormlogger.Warn {
		l.log.Sugar().Warnf(msg, args...)
	}
}

func (l *gormLogger) Error(_ context.Context, msg string, args ...any) {
	if l.level >= gormlogger.Error {
		l.log.Sugar().Errorf(msg, args...)
	}
}

func (l *gormLogger) Trace(_ context.Context, begin time.Time, fc func() (string, int64), err error) {
	if l.level <= gormlogger.Silent {
		return
	}
	elapsed := time.Since(begin)
	switch {
	case err != nil && !errors.Is(err, gorm.ErrRecordNotFound):
		query, rows := fc()
		l.log.Debug("query failed", zap.String("sql", query), zap.Int64("rows", rows),
			zap.Duration("elapsed", elapsed), zap.Error(err))
	case l.slow > 0 && elapsed > l.slow && l.level >= gormlogger.Warn:
		query, rows := fc()
		l.log.Warn("slow query", zap.String("sql", query), zap.Int64("rows", rows), zap.Duration("elapsed", elapsed))
	}
}

// ParamsFilter keeps bound values out of logged SQL: they are CRM data (phone
// numbers, emails) that must not reach logs.
func (l *gormLogger) ParamsFilter(_ context.Context, sql string, _ ...any) (string, []any) {
	return sql, nil
}

// Now is the database server's clock. Watermarks are compared with
// updated_at, which the server stamps, so they must come from the same clock.
func (s *Store) Now(ctx context.Context) (time.Time, error) {
	var t time.Time
	if err := s.db.QueryRowContext(ctx, `SELECT now()`).Scan(&t); err != nil {
		return time.Time{}, fmt.Errorf("state: read server clock: %w", err)
	}
	return t, nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }
