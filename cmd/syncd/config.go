package main

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
	"go.yaml.in/yaml/v3"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
	contactsync "github.com/syncd/syncd/sync"
	"github.com/syncd/syncd/webhook"
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

	// projects are the entries of the file's projects: list, each with its
	// whole configuration; none when the file has no such list. Projects()
	// is how they are read.
	projects []Project `yaml:"-"`
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
	Source string `yaml:"source"`
	// Filter is an SQL boolean expression over the source's columns: only
	// the rows it holds are the project's, so that several projects can
	// read one table.
	Filter    string `yaml:"filter"`
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
	ScopeBound        int      `yaml:"scope_bound"`
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
	// MaxInFlight and BodyTimeout bound what unauthenticated clients can
	// make the listener hold (webhook.Config).
	MaxInFlight int           `yaml:"max_in_flight"`
	BodyTimeout time.Duration `yaml:"body_timeout"`
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
	opts := planner.DefaultOptions()
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
			ScopeBound:        contactsync.DefaultScopeBound,
		},
		Schedule:        ScheduleConfig{Incremental: "@every 1m", Full: "0 3 * * *"},
		HTTP:            HTTPConfig{Listen: "127.0.0.1:9464"},
		Webhook:         WebhookConfig{Path: "/webhooks/sinch", MaxInFlight: webhook.DefaultMaxInFlight, BodyTimeout: webhook.DefaultBodyTimeout},
		Log:             LogConfig{Level: "info", Format: "auto"},
		ShutdownTimeout: 20 * time.Second,
		Journal:         JournalConfig{Retention: 30 * 24 * time.Hour},
	}
}

// envOverrides maps environment variables onto keys, so that secrets and
// the database URL need not sit in the file. Those marked project are read
// by each project of a projects: list too, with its name after SYNCD_
// (see projectEnv).
var envOverrides = []struct {
	name    string
	key     string
	set     func(c *Config, v string) error
	project bool
}{
	{"SYNCD_DATABASE_URL", "database.url", func(c *Config, v string) error { c.Database.URL = v; return nil }, false},
	{"SYNCD_SINCH_PROJECT_ID", "sinch.project_id", func(c *Config, v string) error { c.Sinch.ProjectID = v; return nil }, true},
	{"SYNCD_SINCH_APP_ID", "sinch.app_id", func(c *Config, v string) error { c.Sinch.AppID = v; return nil }, false},
	{"SYNCD_SINCH_REGION", "sinch.region", func(c *Config, v string) error { c.Sinch.Region = v; return nil }, false},
	{"SYNCD_SINCH_BASE_URL", "sinch.base_url", func(c *Config, v string) error { c.Sinch.BaseURL = v; return nil }, false},
	{"SYNCD_SINCH_AUTH", "sinch.auth", func(c *Config, v string) error { c.Sinch.Auth = v; return nil }, false},
	{"SYNCD_SINCH_KEY_ID", "sinch.key_id", func(c *Config, v string) error { c.Sinch.KeyID = v; return nil }, true},
	{"SYNCD_SINCH_KEY_SECRET", "sinch.key_secret", func(c *Config, v string) error { c.Sinch.KeySecret = v; return nil }, true},
	{"SYNCD_SINCH_TOKEN_URL", "sinch.token_url", func(c *Config, v string) error { c.Sinch.TokenURL = v; return nil }, false},
	{"SYNCD_CRM_SOURCE", "crm.source", func(c *Config, v string) error { c.CRM.Source = v; return nil }, false},
	{"SYNCD_WEBHOOK_SECRET", "webhook.secret", func(c *Config, v string) error { c.Webhook.Secret = v; return nil }, true},
	{"SYNCD_LOG_LEVEL", "log.level", func(c *Config, v string) error { c.Log.Level = v; return nil }, false},
	{"SYNCD_LOG_PII", "log.pii", func(c *Config, v string) (err error) { c.Log.PII, err = parseBool(v); return err }, false},
}

// projectEnv names the variable a project reads in place of name, one of
// envOverrides: SYNCD_SINCH_KEY_SECRET is SYNCD_EU_SINCH_KEY_SECRET for
// the project eu. "" is the one project of a configuration without a
// projects: list, which reads the unprefixed ones.
func projectEnv(project, name string) string {
	if project == "" {
		return name
	}
	return "SYNCD_" + strings.ToUpper(project) + "_" + strings.TrimPrefix(name, "SYNCD_")
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
	var projects *yaml.Node
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !explicit:
	case err != nil:
		return cfg, fmt.Errorf("read config: %w", err)
	default:
		projects, problems = decodeConfig(data, &cfg)
		var syntax *syntaxError
		if len(problems) == 1 && errors.As(problems[0], &syntax) {
			// Nothing else can be judged: the keys the file holds were not
			// read, so "required" would be a lie about them.
			return cfg, fmt.Errorf("%s: %w", path, syntax)
		}
	}
	for _, o := range envOverrides {
		if v := getenv(o.name); v != "" {
			if err := o.set(&cfg, v); err != nil {
				problems = append(problems, fmt.Errorf("%s (%s): %w", o.name, o.key, err))
			}
		}
	}
	// Each project starts from the top level as the environment left it,
	// so that what the projects share is written once.
	if projects != nil {
		var errs []error
		cfg.projects, errs = decodeProjects(projects, cfg, getenv)
		problems = append(problems, errs...)
	}
	if len(problems) > 0 {
		return cfg, problems
	}
	return cfg, nil
}

// loadLocalConfig is loadConfig for a command that reads syncd's state in
// PostgreSQL and calls no Sinch (status, prune): it needs no access key
// and no webhook secret, which the packaged install keeps in the root-only
// /etc/syncd/syncd.env, so that the service's user can run it as it is.
func loadLocalConfig(path string, explicit bool, getenv func(string) string) (Config, error) {
	cfg, err := readConfig(path, explicit, getenv)
	if err != nil {
		return cfg, err
	}
	if p := cfg.withoutSecrets().problems(); len(p) > 0 {
		return cfg, p[0]
	}
	return cfg, nil
}

// withoutSecrets is c with every secret set to a stand-in where it is
// missing, so that problems judges the rest only.
func (c Config) withoutSecrets() Config {
	fill := func(c *Config) {
		c.Sinch.KeyID = cmp.Or(c.Sinch.KeyID, "-")
		c.Sinch.KeySecret = cmp.Or(c.Sinch.KeySecret, "-")
		c.Webhook.Secret = cmp.Or(c.Webhook.Secret, "-")
	}
	fill(&c)
	c.projects = slices.Clone(c.projects)
	for i := range c.projects {
		fill(&c.projects[i].Config)
	}
	return c
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
// its key; a project's problems are named by its path in the projects:
// list (projects[eu].sinch.region).
func (c Config) problems() []error {
	out := c.sharedProblems()
	if len(c.projects) == 0 {
		return append(out, c.projectProblems("")...)
	}
	paths := projectPaths(c.projects)
	for i, p := range c.projects {
		switch {
		case p.Name == "":
			out = append(out, fmt.Errorf("%s.name is required", paths[i]))
		case !projectNameRE.MatchString(p.Name):
			out = append(out, fmt.Errorf("%s.name: %q is not lower case letters, digits and _", paths[i], p.Name))
		case paths[i] != "projects["+p.Name+"]":
			out = append(out, fmt.Errorf("%s.name: %q names another project too: names are unique", paths[i], p.Name))
		}
		for _, err := range p.Config.projectProblems(p.Name) {
			out = append(out, fmt.Errorf("%s.%w", paths[i], err))
		}
	}
	return append(out, c.betweenProjects(paths)...)
}

// betweenProjects checks what the projects of a projects: list must not
// share: a Sinch project (its lock and links would be both's), or a webhook
// listener's path (one listener serves the projects that name its address)
// and http.listen's address.
func (c Config) betweenProjects(paths []string) []error {
	var out []error
	projectIDs := map[string]string{}
	hooks := map[string]string{} // listen + path: the first project's path
	for i, p := range c.projects {
		s, w := p.Config.Sinch, p.Config.Webhook
		if first, ok := projectIDs[s.ProjectID]; ok && s.ProjectID != "" {
			out = append(out, fmt.Errorf("%s.sinch.project_id: %q is %s's too: two projects on one Sinch project would share its lock and links", paths[i], s.ProjectID, first))
		} else {
			projectIDs[s.ProjectID] = paths[i]
		}
		if w.Listen == "" {
			continue
		}
		if w.Listen == c.HTTP.Listen {
			out = append(out, fmt.Errorf("%s.webhook.listen: %s is http.listen's: the webhook needs an address of its own", paths[i], w.Listen))
		}
		if first, ok := hooks[w.Listen+" "+w.Path]; ok {
			out = append(out, fmt.Errorf("%s.webhook.path: %s on %s is %s's too: projects on one webhook.listen need different webhook.path", paths[i], w.Path, w.Listen, first))
		} else {
			hooks[w.Listen+" "+w.Path] = paths[i]
		}
	}
	return out
}

// projectNameRE is what a project's name may be: it becomes part of
// environment variables, metric labels and --project.
var projectNameRE = regexp.MustCompile(`^[a-z0-9_]+$`)

// projectPaths names each project of a projects: list in messages: by its
// name, or by its place in the list while it has no name of its own (none,
// a malformed one, or one an earlier project has).
func projectPaths(projects []Project) []string {
	paths := make([]string, len(projects))
	seen := map[string]bool{}
	for i, p := range projects {
		paths[i] = fmt.Sprintf("projects[%d]", i)
		if projectNameRE.MatchString(p.Name) && !seen[p.Name] {
			seen[p.Name] = true
			paths[i] = "projects[" + p.Name + "]"
		}
	}
	return paths
}

// sharedProblems checks the keys that only the top level has: those of the
// process rather than of a project.
func (c Config) sharedProblems() []error {
	var out []error
	bad := func(format string, args ...any) { out = append(out, fmt.Errorf(format, args...)) }
	if c.Database.URL == "" {
		bad("database.url is required (or SYNCD_DATABASE_URL)")
	} else if u, err := url.Parse(c.Database.URL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		bad("database.url must be a postgres:// URL")
	}
	if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
		bad("http.listen: %q is not host:port", c.HTTP.Listen)
	}
	if _, err := zapcore.ParseLevel(c.Log.Level); err != nil {
		bad("log.level: %q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "auto", "json", "console":
	default:
		bad("log.format: %q is not one of auto, json, console", c.Log.Format)
	}
	if c.ShutdownTimeout < 0 {
		bad("shutdown_timeout must not be negative (0 stops at once)")
	}
	if c.Journal.Retention < 0 {
		bad("journal.retention must not be negative (0 keeps everything)")
	}
	return out
}

// projectProblems checks the keys a project may set (sinch, crm, sync,
// schedule, webhook) of project, whose name the variables that may supply
// them carry ("" for the one project without a projects: list).
func (c Config) projectProblems(project string) []error {
	var out []error
	bad := func(format string, args ...any) { out = append(out, fmt.Errorf(format, args...)) }
	env := func(name string) string { return projectEnv(project, name) }
	if c.Sinch.ProjectID == "" {
		bad("sinch.project_id is required (or %s)", env("SYNCD_SINCH_PROJECT_ID"))
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
		bad("sinch.key_id is required (or %s)", env("SYNCD_SINCH_KEY_ID"))
	}
	if c.Sinch.KeySecret == "" {
		bad("sinch.key_secret is required (or %s)", env("SYNCD_SINCH_KEY_SECRET"))
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
	if c.Sync.ScopeBound < 1 {
		bad("sync.scope_bound must be at least 1")
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
	return append(out, c.Webhook.problemsWith(env("SYNCD_WEBHOOK_SECRET"))...)
}

// maxWebhookTarget is the longest target the Webhooks API accepts.
const maxWebhookTarget = 742

// maxBodyTimeout bounds webhook.body_timeout: a body that takes longer is
// not Sinch's few kilobytes.
const maxBodyTimeout = time.Minute

// problems checks the webhook keys. The listener is off without
// webhook.listen; with it, callbacks cannot be verified without a secret.
// public_url and sinch.app_id are needed only to register the webhook.
func (w WebhookConfig) problems() []error { return w.problemsWith("SYNCD_WEBHOOK_SECRET") }

// problemsWith is problems where secretEnv is the variable that may supply
// the secret, a project's own.
func (w WebhookConfig) problemsWith(secretEnv string) []error {
	var out []error
	bad := func(format string, args ...any) { out = append(out, fmt.Errorf(format, args...)) }
	if w.Listen != "" {
		if _, _, err := net.SplitHostPort(w.Listen); err != nil {
			bad("webhook.listen: %q is not host:port", w.Listen)
		}
		if w.Secret == "" {
			bad("webhook.secret is required with webhook.listen (or %s): unsigned callbacks are refused", secretEnv)
		}
	}
	if !strings.HasPrefix(w.Path, "/") {
		bad("webhook.path: %q does not start with /", w.Path)
	}
	if w.MaxInFlight < 1 {
		bad("webhook.max_in_flight: %d; at least 1", w.MaxInFlight)
	}
	if w.BodyTimeout <= 0 || w.BodyTimeout > maxBodyTimeout {
		bad("webhook.body_timeout: %s; more than 0 and at most %s", w.BodyTimeout, maxBodyTimeout)
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

func (c Config) syncOptions(allowMassDelete bool) planner.Options {
	return planner.Options{
		PhoneChannels:     c.Sync.PhoneChannels,
		DefaultLanguage:   c.Sync.DefaultLanguage,
		DefaultRegion:     c.Sync.DefaultRegion,
		ExternalIDPrefix:  c.Sync.ExternalIDPrefix,
		DeletePolicy:      planner.DeletePolicy(c.Sync.DeletePolicy),
		MaxDeletes:        c.Sync.MaxDeletes,
		MaxDeleteFraction: c.Sync.MaxDeleteFraction,
		AllowMassDelete:   allowMassDelete,
	}
}

// source is the project's CRM source: crm.source, and crm.filter over it.
func (c Config) source() crm.Source {
	return crm.Source{Relation: c.CRM.Source, Filter: c.CRM.Filter}
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

// Projects lists the projects the configuration names, in the order of its
// projects: list; a configuration without one is one project named
// "default", the whole configuration.
func (c Config) Projects() []Project {
	if len(c.projects) == 0 {
		return []Project{{Name: defaultProjectName, Config: c}}
	}
	return slices.Clone(c.projects)
}
