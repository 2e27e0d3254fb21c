package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/syncd/syncd/sinch"
	contactsync "github.com/syncd/syncd/sync"
)

// Config is the whole configuration: config.yaml at the repository root is
// its commented example, and the environment overrides the file.
type Config struct {
	Database        DatabaseConfig `yaml:"database"`
	Sinch           SinchConfig    `yaml:"sinch"`
	CRM             CRMConfig      `yaml:"crm"`
	Sync            SyncConfig     `yaml:"sync"`
	Schedule        ScheduleConfig `yaml:"schedule"`
	HTTP            HTTPConfig     `yaml:"http"`
	Webhook         WebhookConfig  `yaml:"webhook"`
	Log             LogConfig      `yaml:"log"`
	ShutdownTimeout time.Duration  `yaml:"shutdown_timeout"`
	Journal         JournalConfig  `yaml:"journal"`
}

// JournalConfig bounds the history syncd keeps.
type JournalConfig struct {
	// Retention is how long journal entries and finished runs are kept; 0
	// keeps them for ever.
	Retention time.Duration `yaml:"retention"`
}

type DatabaseConfig struct {
	URL string `yaml:"url"`
}

type SinchConfig struct {
	ProjectID      string        `yaml:"project_id"`
	AppID          string        `yaml:"app_id"`
	Region         string        `yaml:"region"`
	BaseURL        string        `yaml:"base_url"`
	Auth           string        `yaml:"auth"`
	KeyID          string        `yaml:"key_id"`
	KeySecret      string        `yaml:"key_secret"`
	TokenURL       string        `yaml:"token_url"`
	Timeout        time.Duration `yaml:"timeout"`
	RateLimitRPS   float64       `yaml:"rate_limit_rps"`
	MaxConcurrency int           `yaml:"max_concurrency"`
	MaxAttempts    int           `yaml:"max_attempts"`
	MaxRetryTime   time.Duration `yaml:"max_retry_time"`
}

type CRMConfig struct {
	Source    string `yaml:"source"`
	BatchSize int    `yaml:"batch_size"`
	Notify    bool   `yaml:"notify"`
}

type SyncConfig struct {
	PhoneChannels     []string `yaml:"phone_channels"`
	DefaultLanguage   string   `yaml:"default_language"`
	DefaultRegion     string   `yaml:"default_region"`
	ExternalIDPrefix  string   `yaml:"external_id_prefix"`
	DeletePolicy      string   `yaml:"delete_policy"`
	MaxDeletes        int      `yaml:"max_deletes"`
	MaxDeleteFraction float64  `yaml:"max_delete_fraction"`
}

type ScheduleConfig struct {
	Incremental string `yaml:"incremental"`
	Full        string `yaml:"full"`
}

type HTTPConfig struct {
	Listen string `yaml:"listen"`
}

// WebhookConfig is the receiver of Sinch's contact events: its own
// listener, apart from http.listen, since it faces Sinch (through a reverse
// proxy) while metrics stay on loopback.
type WebhookConfig struct {
	Listen    string `yaml:"listen"`
	Path      string `yaml:"path"`
	PublicURL string `yaml:"public_url"`
	Secret    string `yaml:"secret"`
}

type LogConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
	PII    bool   `yaml:"pii"`
}

// defaultConfig is what syncd runs on when neither the file nor the
// environment says otherwise: a local PostgreSQL and the emulator that
// `syncd emulator` serves.
func defaultConfig() Config {
	opts := contactsync.DefaultOptions()
	return Config{
		Database: DatabaseConfig{URL: "postgres://postgres@127.0.0.1:5432/syncd?sslmode=disable"},
		Sinch: SinchConfig{
			Region:         "us",
			Auth:           sinch.AuthOAuth2,
			Timeout:        10 * time.Second,
			RateLimitRPS:   sinch.DefaultRateLimitRPS,
			MaxConcurrency: sinch.DefaultMaxConcurrency,
			MaxAttempts:    6,
			MaxRetryTime:   2 * time.Minute,
		},
		CRM: CRMConfig{Source: "crm_contacts", BatchSize: 1000},
		Sync: SyncConfig{
			PhoneChannels:     opts.PhoneChannels,
			DefaultLanguage:   opts.DefaultLanguage,
			DeletePolicy:      string(opts.DeletePolicy),
			MaxDeletes:        opts.MaxDeletes,
			MaxDeleteFraction: opts.MaxDeleteFraction,
		},
		Schedule:        ScheduleConfig{Incremental: "@every 1m", Full: "0 3 * * *"},
		HTTP:            HTTPConfig{Listen: "127.0.0.1:9464"},
		Webhook:         WebhookConfig{Path: "/webhooks/sinch"},
		Log:             LogConfig{Level: "info", Format: "auto"},
		ShutdownTimeout: 20 * time.Second,
		Journal:         JournalConfig{Retention: 30 * 24 * time.Hour},
	}
}

// envOverrides maps environment variables onto keys, so that secrets and
// the database URL need not sit in the file.
var envOverrides = []struct {
	name string
	key  string
	set  func(c *Config, v string) error
}{
	{"SYNCD_DATABASE_URL", "database.url", func(c *Config, v string) error { c.Database.URL = v; return nil }},
	{"SYNCD_SINCH_PROJECT_ID", "sinch.project_id", func(c *Config, v string) error { c.Sinch.ProjectID = v; return nil }},
	{"SYNCD_SINCH_APP_ID", "sinch.app_id", func(c *Config, v string) error { c.Sinch.AppID = v; return nil }},
	{"SYNCD_SINCH_REGION", "sinch.region", func(c *Config, v string) error { c.Sinch.Region = v; return nil }},
	{"SYNCD_SINCH_BASE_URL", "sinch.base_url", func(c *Config, v string) error { c.Sinch.BaseURL = v; return nil }},
	{"SYNCD_SINCH_AUTH", "sinch.auth", func(c *Config, v string) error { c.Sinch.Auth = v; return nil }},
	{"SYNCD_SINCH_KEY_ID", "sinch.key_id", func(c *Config, v string) error { c.Sinch.KeyID = v; return nil }},
	{"SYNCD_SINCH_KEY_SECRET", "sinch.key_secret", func(c *Config, v string) error { c.Sinch.KeySecret = v; return nil }},
	{"SYNCD_SINCH_TOKEN_URL", "sinch.token_url", func(c *Config, v string) error { c.Sinch.TokenURL = v; return nil }},
	{"SYNCD_CRM_SOURCE", "crm.source", func(c *Config, v string) error { c.CRM.Source = v; return nil }},
	{"SYNCD_WEBHOOK_SECRET", "webhook.secret", func(c *Config, v string) error { c.Webhook.Secret = v; return nil }},
	{"SYNCD_LOG_LEVEL", "log.level", func(c *Config, v string) error { c.Log.Level = v; return nil }},
	{"SYNCD_LOG_PII", "log.pii", func(c *Config, v string) (err error) { c.Log.PII, err = parseBool(v); return err }},
}

// loadConfig reads the file at path (a missing file is fine unless the
// user named it explicitly), applies the environment and validates.
func loadConfig(path string, explicit bool, getenv func(string) string) (Config, error) {
	cfg, err := readConfig(path, explicit, getenv)
	if err != nil {
		return cfg, err
	}
	return cfg, cfg.validate()
}

// readConfig reads the file and applies the environment without judging
// the values: an unreadable file, an unknown key or a value of the wrong
// kind is an error here, all of them at once as configErrors; the keys
// that read well are set all the same.
func readConfig(path string, explicit bool, getenv func(string) string) (Config, error) {
	cfg := defaultConfig()
	var problems configErrors
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !explicit:
	case err != nil:
		return cfg, fmt.Errorf("read config: %w", err)
	default:
		problems = decodeConfig(data, &cfg)
	}
	for _, o := range envOverrides {
		if v := getenv(o.name); v != "" {
			if err := o.set(&cfg, v); err != nil {
				problems = append(problems, fmt.Errorf("%s (%s): %w", o.name, o.key, err))
			}
		}
	}
	if len(problems) > 0 {
		return cfg, problems
	}
	return cfg, nil
}

// validate reports the first problem of the configuration; problems lists
// them all, for syncd config check.
func (c Config) validate() error {
	if p := c.problems(); len(p) > 0 {
		return p[0]
	}
	return nil
}

// problems checks every key and returns one error per problem, each naming
// its key.
func (c Config) problems() []error {
	var out []error
	bad := func(format string, args ...any) { out = append(out, fmt.Errorf(format, args...)) }
	if c.Database.URL == "" {
		bad("database.url is required (or SYNCD_DATABASE_URL)")
	} else if u, err := url.Parse(c.Database.URL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		bad("database.url must be a postgres:// URL")
	}
	if c.Sinch.ProjectID == "" {
		bad("sinch.project_id is required (or SYNCD_SINCH_PROJECT_ID)")
	}
	if !slices.Contains([]string{"us", "eu", "br"}, c.Sinch.Region) {
		bad("sinch.region: %q is not one of us, eu, br", c.Sinch.Region)
	}
	if c.Sinch.BaseURL != "" {
		if u, err := url.Parse(c.Sinch.BaseURL); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			bad("sinch.base_url: %q is not an http(s) URL", c.Sinch.BaseURL)
		}
	}
	if c.Sinch.Auth != "basic" && c.Sinch.Auth != "oauth2" {
		bad("sinch.auth: %q is not one of basic, oauth2", c.Sinch.Auth)
	}
	if c.Sinch.KeyID == "" {
		bad("sinch.key_id is required (or SYNCD_SINCH_KEY_ID)")
	}
	if c.Sinch.KeySecret == "" {
		bad("sinch.key_secret is required (or SYNCD_SINCH_KEY_SECRET)")
	}
	if c.Sinch.TokenURL != "" {
		if u, err := url.Parse(c.Sinch.TokenURL); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			bad("sinch.token_url: %q is not an http(s) URL", c.Sinch.TokenURL)
		}
	}
	if c.Sinch.Timeout <= 0 {
		bad("sinch.timeout must be positive")
	}
	if c.Sinch.RateLimitRPS <= 0 {
		bad("sinch.rate_limit_rps must be positive")
	}
	if c.Sinch.MaxConcurrency < 1 {
		bad("sinch.max_concurrency must be at least 1")
	}
	if c.Sinch.MaxAttempts < 1 {
		bad("sinch.max_attempts must be at least 1")
	}
	if c.Sinch.MaxRetryTime <= 0 {
		bad("sinch.max_retry_time must be positive")
	}
	if strings.TrimSpace(c.CRM.Source) == "" {
		bad("crm.source is required")
	}
	if c.CRM.BatchSize < 1 {
		bad("crm.batch_size must be at least 1")
	}
	if err := c.syncOptions(false).Validate(); err != nil {
		if joined, ok := err.(interface{ Unwrap() []error }); ok {
			out = append(out, joined.Unwrap()...)
		} else {
			out = append(out, err)
		}
	}
	if _, err := contactsync.ParseSchedule(c.Schedule.Incremental); err != nil {
		bad("schedule.incremental: %q is not a schedule (like \"@every 1m\" or \"*/5 * * * *\")", c.Schedule.Incremental)
	}
	if _, err := contactsync.ParseSchedule(c.Schedule.Full); err != nil {
		bad("schedule.full: %q is not a schedule (like \"0 3 * * *\" or \"@daily\")", c.Schedule.Full)
	}
	if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
		bad("http.listen: %q is not host:port", c.HTTP.Listen)
	}
	out = append(out, c.Webhook.problems()...)
	if _, err := zapcore.ParseLevel(c.Log.Level); err != nil {
		bad("log.level: %q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "auto", "json", "console":
	default:
		bad("log.format: %q is not one of auto, json, console", c.Log.Format)
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown_timeout must be positive")
	}
	if c.Journal.Retention < 0 {
		bad("journal.retention must not be negative (0 keeps everything)")
	}
	return out
}

// maxWebhookTarget is the longest target the Webhooks API accepts.
const maxWebhookTarget = 742

// problems checks the webhook keys. The listener is off without
// webhook.listen; with it, callbacks cannot be verified without a secret.
// public_url and sinch.app_id are needed only to register the webhook.
func (w WebhookConfig) problems() []error {
	var out []error
	bad := func(format string, args ...any) { out = append(out, fmt.Errorf(format, args...)) }
	if w.Listen != "" {
		if _, _, err := net.SplitHostPort(w.Listen); err != nil {
			bad("webhook.listen: %q is not host:port", w.Listen)
		}
		if w.Secret == "" {
			bad("webhook.secret is required with webhook.listen (or SYNCD_WEBHOOK_SECRET): unsigned callbacks are refused")
		}
	}
	if !strings.HasPrefix(w.Path, "/") {
		bad("webhook.path: %q does not start with /", w.Path)
	}
	if w.PublicURL != "" {
		if u, err := url.Parse(w.PublicURL); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			bad("webhook.public_url: %q is not an http(s) URL", w.PublicURL)
		} else if len(w.PublicURL) > maxWebhookTarget {
			bad("webhook.public_url is %d characters; Sinch accepts at most %d", len(w.PublicURL), maxWebhookTarget)
		}
	}
	return out
}

func (c Config) syncOptions(allowMassDelete bool) contactsync.Options {
	return contactsync.Options{
		PhoneChannels:     c.Sync.PhoneChannels,
		DefaultLanguage:   c.Sync.DefaultLanguage,
		DefaultRegion:     c.Sync.DefaultRegion,
		ExternalIDPrefix:  c.Sync.ExternalIDPrefix,
		DeletePolicy:      contactsync.DeletePolicy(c.Sync.DeletePolicy),
		MaxDeletes:        c.Sync.MaxDeletes,
		MaxDeleteFraction: c.Sync.MaxDeleteFraction,
		AllowMassDelete:   allowMassDelete,
	}
}

func (c Config) sinchConfig() sinch.Config {
	return sinch.Config{
		BaseURL:        c.Sinch.BaseURL,
		Region:         c.Sinch.Region,
		ProjectID:      c.Sinch.ProjectID,
		Auth:           c.Sinch.Auth,
		KeyID:          c.Sinch.KeyID,
		KeySecret:      c.Sinch.KeySecret,
		TokenURL:       c.Sinch.TokenURL,
		Timeout:        c.Sinch.Timeout,
		RateLimitRPS:   c.Sinch.RateLimitRPS,
		MaxConcurrency: c.Sinch.MaxConcurrency,
		MaxAttempts:    c.Sinch.MaxAttempts,
		MaxRetryTime:   c.Sinch.MaxRetryTime,
	}
}

// defaultProjectName names the one project of a configuration without a
// projects: list, in logs, metrics and --project.
const defaultProjectName = "default"

// Project is one Sinch project that syncd keeps in sync: its name and its
// whole configuration, the top-level sections with the project's own keys
// over them.
type Project struct {
	Name   string
	Config Config
}

// Projects lists the projects the configuration names; a configuration
// without a projects: list is one project named "default".
func (c Config) Projects() []Project {
	return []Project{{Name: defaultProjectName, Config: c}}
}
