package sinch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// authorizer puts credentials on a request.
type authorizer interface {
	// authorize sets the Authorization header and returns the credential it
	// used, so that a 401 can name the one to drop.
	authorize(ctx context.Context, req *http.Request) (string, error)
	// invalidate drops a credential Sinch rejected and reports whether
	// asking again can help (it can for an OAuth2 token, not for a key).
	invalidate(credential string) bool
	// current is the live bearer token, if any, for redaction.
	current() string
}

type basicAuth struct{ id, secret string }

func (b basicAuth) authorize(_ context.Context, req *http.Request) (string, error) {
	req.SetBasicAuth(b.id, b.secret)
	return "", nil
}
func (basicAuth) invalidate(string) bool { return false }
func (basicAuth) current() string        { return "" }

// fallbackTokenLifetime is assumed when the token answer has no expires_in.
const fallbackTokenLifetime = 5 * time.Minute

// tokenSource caches one OAuth2 client-credentials token and refreshes it a
// little before it expires. Only one refresh runs at a time: the token
// endpoint is a small bucket that sends no Retry-After, so a stampede of
// refreshes would lock the client out.
type tokenSource struct {
	cfg     clientcredentials.Config
	hc      *http.Client
	clk     *clock
	observe func(status int, d time.Duration)
	// redact scrubs credentials from what the token endpoint answered.
	redact func(string) string

	// refresh is held while a token is fetched; a channel rather than a
	// mutex so that a caller waiting for it still honours its context.
	refresh chan struct{}

	mu        sync.Mutex
	tok       string
	refreshAt time.Time
}

func newTokenSource(cfg Config, hc *http.Client, clk *clock, observe func(int, time.Duration), redact func(string) string) *tokenSource {
	return &tokenSource{
		cfg: clientcredentials.Config{
			ClientID:     cfg.KeyID,
			ClientSecret: cfg.KeySecret,
			TokenURL:     cfg.TokenURL,
			AuthStyle:    oauth2.AuthStyleInHeader, // Basic key_id:key_secret, as Sinch expects
		},
		hc:      hc,
		clk:     clk,
		observe: observe,
		redact:  redact,
		refresh: make(chan struct{}, 1),
	}
}

func (s *tokenSource) cached() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tok, s.tok != "" && s.clk.now().Before(s.refreshAt)
}

func (s *tokenSource) current() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tok
}

func (s *tokenSource) invalidate(tok string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Another caller may already have replaced the rejected token.
	if s.tok == tok {
		s.tok = ""
	}
	return true
}

func (s *tokenSource) authorize(ctx context.Context, req *http.Request) (string, error) {
	tok, err := s.token(ctx)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return tok, nil
}

func (s *tokenSource) token(ctx context.Context) (string, error) {
	if tok, ok := s.cached(); ok {
		return tok, nil
	}
	select {
	case s.refresh <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-s.refresh }()
	// Whoever held the lock before us may have refreshed already.
	if tok, ok := s.cached(); ok {
		return tok, nil
	}

	start := time.Now()
	tk, err := s.cfg.Token(context.WithValue(ctx, oauth2.HTTPClient, s.hc))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil {
			s.observe(re.Response.StatusCode, time.Since(start))
			return "", tokenAPIError(re, s.clk.now(), s.redact)
		}
		s.observe(0, time.Since(start))
		return "", fmt.Errorf("sinch %s: %w", OpToken, err)
	}
	s.observe(http.StatusOK, time.Since(start))

	now := s.clk.now()
	lifetime := time.Duration(tk.ExpiresIn) * time.Second
	if lifetime <= 0 {
		lifetime = fallbackTokenLifetime
	}
	// Refresh a tenth of the lifetime early, at most a minute: early enough
	// that a call in flight does not carry a token that dies on the way.
	margin := min(time.Minute, lifetime/10)
	s.mu.Lock()
	s.tok, s.refreshAt = tk.AccessToken, now.Add(lifetime-margin)
	s.mu.Unlock()
	return tk.AccessToken, nil
}

// tokenAPIError turns the token endpoint's OAuth2 error into an *APIError so
// that callers see one error type whatever failed. Credentials are scrubbed
// from the body before it is cut.
func tokenAPIError(re *oauth2.RetrieveError, now time.Time, redact func(string) string) *APIError {
	status := re.Response.StatusCode
	e := &APIError{
		HTTPStatus: status,
		Code:       status,
		Status:     rpcStatusName(status),
		Message:    re.ErrorCode,
		RetryAfter: parseRetryAfter(re.Response.Header.Get("Retry-After"), now),
		Operation:  OpToken,
	}
	if re.ErrorDescription != "" {
		e.Message += ": " + re.ErrorDescription
	}
	if e.Message == "" {
		e.Message = snippet([]byte(redact(string(re.Body))))
	}
	e.Message = redact(e.Message)
	return e
}
