package sinch

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Operation names, as reported to an Observer and counted by the emulator.
const (
	OpList   = "list"
	OpGet    = "get"
	OpCreate = "create"
	OpUpdate = "update"
	OpDelete = "delete"
	OpMerge  = "merge"
	OpToken  = "token"
)

// Auth modes.
const (
	AuthBasic  = "basic"
	AuthOAuth2 = "oauth2"
)

// DefaultTokenURL is Sinch's OAuth2 token endpoint; one token serves every
// region.
const DefaultTokenURL = "https://auth.sinch.com/oauth2/token"

// ProjectRateLimit is Sinch's documented limit of one project, shared by
// all its apps and most endpoints.
const ProjectRateLimit = 800

// Defaults of Config.
const (
	DefaultRateLimitRPS   = ProjectRateLimit / 2
	DefaultMaxConcurrency = 64
)

// Observer is told about every HTTP attempt the client makes, retries and
// token fetches included. statusCode is 0 when no answer came back.
type Observer interface {
	ObserveCall(op string, statusCode int, d time.Duration)
}

// Config configures a Client. Zero values take the documented defaults.
type Config struct {
	BaseURL   string // overrides the regional endpoint https://{region}.conversation.api.sinch.com
	Region    string // us (default), eu or br
	ProjectID string // required
	Auth      string // AuthOAuth2 (default) or AuthBasic, which Sinch rate-limits harder
	KeyID     string // required
	// KeySecret is required. It is never logged, and the client blanks it
	// out of any server message it puts in an error.
	KeySecret string
	TokenURL  string // default DefaultTokenURL

	Timeout time.Duration // per attempt, token fetch included; default 10s
	// RateLimitRPS is shared by every call of the client. The default,
	// DefaultRateLimitRPS, is half of Sinch's per-project limit: the other
	// half is the project's own traffic (sending messages).
	RateLimitRPS float64
	// MaxConcurrency caps the requests in flight; within it the client
	// keeps rate × measured round trip + 1 in flight (see governor).
	// Default DefaultMaxConcurrency.
	MaxConcurrency int
	MaxAttempts    int           // attempts per call; default 6
	MaxRetryTime   time.Duration // total time a call may spend retrying; default 2m
	MinBackoff     time.Duration // ceiling of the first backoff (full jitter); default 250ms
	MaxBackoff     time.Duration // largest backoff ceiling; default 30s

	HTTPClient *http.Client // optional; default a private transport
	Logger     *zap.Logger  // optional; default no logs
	Observer   Observer     // optional
}

// Client calls the contacts endpoints of one Sinch project. It is safe for
// concurrent use; its rate limit and concurrency bound are shared by all
// callers.
type Client struct {
	cfg      Config
	base     string // {BaseURL}/v1/projects/{ProjectID}
	hc       *http.Client
	auth     authorizer
	gov      *governor
	clk      *clock
	log      *zap.Logger
	redactor *strings.Replacer
}

// NewClient checks cfg and builds a Client.
func NewClient(cfg Config) (*Client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	hc := cfg.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		// Keep one idle connection per concurrent caller instead of the
		// default two, so a busy client does not churn connections.
		tr.MaxIdleConnsPerHost = cfg.MaxConcurrency
		hc = &http.Client{Transport: tr}
	}
	c := &Client{
		cfg:  cfg,
		base: cfg.BaseURL + "/v1/projects/" + url.PathEscape(cfg.ProjectID),
		hc:   hc,
		clk:  realClock(),
		log:  cfg.Logger,
		redactor: strings.NewReplacer(
			cfg.KeySecret, redacted,
			base64.StdEncoding.EncodeToString([]byte(cfg.KeyID+":"+cfg.KeySecret)), redacted,
		),
	}
	c.gov = newGovernor(cfg.RateLimitRPS, cfg.MaxConcurrency, c.clk)
	if cfg.Auth == AuthOAuth2 {
		c.auth = newTokenSource(cfg, hc, c.clk, func(status int, d time.Duration) { c.observe(OpToken, status, d) }, c.redact)
	} else {
		c.auth = basicAuth{id: cfg.KeyID, secret: cfg.KeySecret}
	}
	return c, nil
}

const redacted = "[REDACTED]"

func (cfg Config) withDefaults() (Config, error) {
	switch cfg.Region {
	case "":
		cfg.Region = "us"
	case "us", "eu", "br":
	default:
		return cfg, fmt.Errorf("sinch: unknown region %q (want us, eu or br)", cfg.Region)
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = "https://" + cfg.Region + ".conversation.api.sinch.com"
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return cfg, fmt.Errorf("sinch: base URL %q is not an http(s) URL", cfg.BaseURL)
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	switch {
	case cfg.ProjectID == "":
		return cfg, errors.New("sinch: project id is required")
	case cfg.KeyID == "" || cfg.KeySecret == "":
		return cfg, errors.New("sinch: access key id and secret are required")
	}
	switch cfg.Auth {
	case "":
		cfg.Auth = AuthOAuth2
	case AuthBasic, AuthOAuth2:
	default:
		return cfg, fmt.Errorf("sinch: unknown auth %q (want %s or %s)", cfg.Auth, AuthBasic, AuthOAuth2)
	}
	if cfg.TokenURL == "" {
		cfg.TokenURL = DefaultTokenURL
	}
	if cfg.RateLimitRPS < 0 {
		return cfg, errors.New("sinch: rate limit must not be negative")
	}
	setDefault(&cfg.RateLimitRPS, DefaultRateLimitRPS)
	setDefault(&cfg.Timeout, 10*time.Second)
	setDefault(&cfg.MaxConcurrency, DefaultMaxConcurrency)
	setDefault(&cfg.MaxAttempts, 6)
	setDefault(&cfg.MaxRetryTime, 2*time.Minute)
	setDefault(&cfg.MinBackoff, 250*time.Millisecond)
	setDefault(&cfg.MaxBackoff, 30*time.Second)
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.MinBackoff)
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return cfg, nil
}

func setDefault[T int | float64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// InFlightLimit is how many requests the client lets be in flight now, and
// the smoothed round trip it was sized from (0 before the first answer).
func (c *Client) InFlightLimit() (int, time.Duration) { return c.gov.limits() }

// CloseIdleConnections closes the client's idle keep-alive connections.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// ListContactsRequest selects one page of contacts. ExternalID cannot be
// combined with Channel/Identity, which go together. A phone number may be
// given with or without its '+': it is sent as Sinch stores it.
type ListContactsRequest struct {
	PageSize   int // 0 lets Sinch pick (10); capped at MaxPageSize
	PageToken  string
	ExternalID string
	Channel    string
	Identity   string
}

// ListContactsResponse is one page. NextPageToken is empty on the last page.
type ListContactsResponse struct {
	Contacts      []Contact `json:"contacts"`
	NextPageToken string    `json:"next_page_token"`
}

// ListContacts fetches one page of contacts.
func (c *Client) ListContacts(ctx context.Context, req ListContactsRequest) (*ListContactsResponse, error) {
	q := url.Values{}
	if req.PageSize > 0 {
		q.Set("page_size", strconv.Itoa(min(req.PageSize, MaxPageSize)))
	}
	setIf := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	setIf("page_token", req.PageToken)
	setIf("external_id", req.ExternalID)
	setIf("channel", req.Channel)
	// Sinch stores a number without its '+', and whether its filter
	// normalises the query is not documented: a miss would mean a duplicate
	// contact, so ask in the stored form.
	setIf("identity", NormalizeIdentity(req.Channel, req.Identity))
	var out ListContactsResponse
	err := c.do(ctx, &call{op: OpList, method: http.MethodGet, path: "/contacts", query: q, out: &out, idempotent: true})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Pages iterates over every page matching req, following next_page_token
// with pages of MaxPageSize unless req sets a size. An error is yielded once,
// with a nil page, and ends the iteration.
func (c *Client) Pages(ctx context.Context, req ListContactsRequest) iter.Seq2[[]Contact, error] {
	return func(yield func([]Contact, error) bool) {
		if req.PageSize <= 0 {
			req.PageSize = MaxPageSize
		}
		for {
			page, err := c.ListContacts(ctx, req)
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(page.Contacts, nil) || page.NextPageToken == "" {
				return
			}
			// A server handing back the token it was given would loop forever.
			if page.NextPageToken == req.PageToken {
				yield(nil, fmt.Errorf("sinch %s: the server repeated page token %q", OpList, req.PageToken))
				return
			}
			req.PageToken = page.NextPageToken
		}
	}
}

// FindByExternalID returns every contact whose external_id is externalID,
// across all pages. Sinch does not keep external ids unique.
func (c *Client) FindByExternalID(ctx context.Context, externalID string) ([]Contact, error) {
	if externalID == "" {
		// An empty filter would list the whole project.
		return nil, errors.New("sinch: FindByExternalID needs an external id")
	}
	var all []Contact
	for page, err := range c.Pages(ctx, ListContactsRequest{ExternalID: externalID}) {
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
	}
	return all, nil
}

// GetContact fetches one contact; a missing one gives an error for which
// IsNotFound is true.
func (c *Client) GetContact(ctx context.Context, id string) (*Contact, error) {
	if id == "" {
		return nil, errors.New("sinch: contact id is required")
	}
	var out Contact
	if err := c.do(ctx, &call{op: OpGet, method: http.MethodGet, path: contactPath(id), out: &out, idempotent: true}); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateContact creates a contact and returns it as Sinch stored it.
//
// A create is never blindly resent. When an attempt fails in a way that
// leaves its outcome open (5xx, timeout, dropped connection), a contact with
// an external id is looked up by it: if Sinch has one, it is returned; if not,
// the create is resent. A contact without an external id cannot be looked up,
// so the call then fails with an error wrapping ErrOutcomeUnknown.
func (c *Client) CreateContact(ctx context.Context, contact Contact) (*Contact, error) {
	if contact.Language == LanguageUnspecified {
		return nil, fmt.Errorf("sinch %s: language %s is not accepted on create", OpCreate, LanguageUnspecified)
	}
	contact.ID = ""
	var out Contact
	cl := &call{op: OpCreate, method: http.MethodPost, path: "/contacts", body: contact, out: &out}
	if contact.ExternalID != "" {
		cl.beforeResend = func(ctx context.Context) (bool, error) {
			found, err := c.FindByExternalID(ctx, contact.ExternalID)
			if err != nil || len(found) == 0 {
				return false, err
			}
			if len(found) > 1 {
				c.log.Warn("sinch: several contacts share the external id of a create whose answer was lost; returning the first", zap.Int("count", len(found)))
			}
			out = found[0]
			return true, nil
		}
	}
	if err := c.do(ctx, cl); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateContact sets the fields named in mask (Field* constants) to their
// values in body; a masked field left empty in body is cleared. The mask goes
// out as one comma-joined update_mask parameter, as the official SDKs send it.
func (c *Client) UpdateContact(ctx context.Context, id string, body Contact, mask []string) (*Contact, error) {
	if id == "" {
		return nil, errors.New("sinch: contact id is required")
	}
	q := url.Values{}
	if len(mask) > 0 {
		q.Set("update_mask", strings.Join(mask, ","))
	}
	body.ID = ""
	var out Contact
	if err := c.do(ctx, &call{op: OpUpdate, method: http.MethodPatch, path: contactPath(id), query: q, body: body, out: &out, idempotent: true}); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteContact deletes a contact. A 404 on a resend after a lost answer means
// the first attempt did it, and counts as success.
func (c *Client) DeleteContact(ctx context.Context, id string) error {
	if id == "" {
		return errors.New("sinch: contact id is required")
	}
	return c.do(ctx, &call{
		op: OpDelete, method: http.MethodDelete, path: contactPath(id), idempotent: true,
		settle404: func(context.Context) error { return nil },
	})
}

// mergeRequest is the body of a merge.
type mergeRequest struct {
	SourceID string `json:"source_id"`
	Strategy string `json:"strategy,omitempty"`
}

// MergeContacts merges source into destination, which Sinch keeps and
// returns; the source is deleted. When a merge's answer was lost, its resend
// gets a 404 for the gone source: the destination is then fetched and
// returned, since the first attempt did the merge.
func (c *Client) MergeContacts(ctx context.Context, destinationID, sourceID string) (*Contact, error) {
	if destinationID == "" || sourceID == "" {
		return nil, errors.New("sinch: merge needs a destination and a source id")
	}
	var out Contact
	err := c.do(ctx, &call{
		op: OpMerge, method: http.MethodPost, path: contactPath(destinationID) + ":merge",
		body: mergeRequest{SourceID: sourceID, Strategy: "MERGE"}, out: &out, idempotent: true,
		settle404: func(ctx context.Context) error {
			// If the destination is there, the 404 was the source's.
			dest, err := c.GetContact(ctx, destinationID)
			if err != nil {
				return err
			}
			out = *dest
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

func contactPath(id string) string { return "/contacts/" + url.PathEscape(id) }
