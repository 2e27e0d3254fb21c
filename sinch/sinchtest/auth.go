package sinchtest

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// tokenIssuer is the iss of the emulator's access tokens.
const tokenIssuer = "sinchtest"

// The WWW-Authenticate challenges of a refused bearer token. An expired
// one says so, which is what the official SDKs look for before they fetch
// a new token and resend (sinch-sdk-node's api-fetch-client checks that
// the header includes "expired"); the form is the one in that SDK's own
// test of the refresh.
const (
	challengeExpired = `Bearer realm="sinch", error="invalid_token", error_description="expired"`
	challengeInvalid = `Bearer realm="sinch", error="invalid_token"`
)

// authenticate checks Basic key credentials or a bearer token the emulator
// issued, and answers 401 UNAUTHENTICATED, in Sinch's error body, when they
// do not hold.
func (e *Emulator) authenticate(w http.ResponseWriter, r *http.Request) bool {
	h := r.Header.Get("Authorization")
	switch {
	case strings.HasPrefix(h, "Basic "):
		if id, secret, ok := r.BasicAuth(); ok && e.validKey(id, secret) {
			return true
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="sinch"`)
	case strings.HasPrefix(h, "Bearer "):
		err := e.checkToken(strings.TrimPrefix(h, "Bearer "))
		switch {
		case err == nil:
			return true
		case errors.Is(err, jwt.ErrTokenExpired):
			w.Header().Set("WWW-Authenticate", challengeExpired)
		default:
			w.Header().Set("WWW-Authenticate", challengeInvalid)
		}
	default:
		w.Header().Set("WWW-Authenticate", `Basic realm="sinch", Bearer realm="sinch"`)
	}
	writeError(w, http.StatusUnauthorized, "UNAUTHENTICATED", "Request had invalid credentials.")
	return false
}

func (e *Emulator) validKey(id, secret string) bool {
	idOK := subtle.ConstantTimeCompare([]byte(id), []byte(e.keyID)) == 1
	secretOK := subtle.ConstantTimeCompare([]byte(secret), []byte(e.keySecret)) == 1
	return idOK && secretOK
}

// issueToken makes an access token as Sinch's token endpoint does: a JWT
// whose exp says when it dies (the Node SDK reads it to refresh ahead of
// time). It is signed with the emulator's own key, so a token of another
// emulator, or one tampered with, is refused. exp is rounded up to the
// second, so that the token never dies before expires_in says.
func (e *Emulator) issueToken(now time.Time) (string, error) {
	exp := now.Add(e.tokenTTL)
	if t := exp.Truncate(time.Second); !t.Equal(exp) {
		exp = t.Add(time.Second)
	}
	e.mu.Lock()
	jti := e.newID()
	e.mu.Unlock()
	claims := jwt.RegisteredClaims{
		Issuer:    tokenIssuer,
		Subject:   e.keyID,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
		ID:        jti,
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(e.tokenKey)
}

// checkToken verifies a bearer token against the emulator's clock; an
// expired one is jwt.ErrTokenExpired.
func (e *Emulator) checkToken(raw string) error {
	_, err := jwt.ParseWithClaims(raw, &jwt.RegisteredClaims{}, func(*jwt.Token) (any, error) { return e.tokenKey, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithTimeFunc(e.now),
		jwt.WithExpirationRequired(), jwt.WithIssuer(tokenIssuer), jwt.WithSubject(e.keyID))
	return err
}

// tokenAnswer is the OAuth2 token endpoint's answer.
type tokenAnswer struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
	TokenType   string `json:"token_type"`
}

// serveToken is the OAuth2 client-credentials endpoint: client auth by HTTP
// Basic (or client_id/client_secret in the form), grant_type
// client_credentials. Its errors use the OAuth2 shape, not Sinch's. Before
// anything else it meets its own faults and rate limit (TokenFaults): a
// small bucket, whose 429 carries no Retry-After.
func (e *Emulator) serveToken(w http.ResponseWriter, r *http.Request) {
	p := e.plan(&e.tokenDice)
	if !pause(r.Context(), p.latency) {
		return
	}
	switch {
	case p.limitedFor > 0 || p.tooMany:
		writeOAuthError(w, http.StatusTooManyRequests, "too_many_requests", "token request rate exceeded")
		return
	case p.failStatus != 0:
		code := map[int]string{http.StatusInternalServerError: "server_error", http.StatusServiceUnavailable: "temporarily_unavailable"}[p.failStatus]
		writeOAuthError(w, p.failStatus, code, "injected failure")
		return
	case p.dropBefore:
		drop(w)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeOAuthError(w, http.StatusMethodNotAllowed, "invalid_request", "use POST")
		return
	}
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "malformed form")
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if !e.validKey(id, secret) {
		w.Header().Set("WWW-Authenticate", `Basic realm="sinch"`)
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "client_credentials" {
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be client_credentials")
		return
	}
	tok, err := e.issueToken(e.now())
	if err != nil {
		writeOAuthError(w, http.StatusInternalServerError, "server_error", "signing the token failed")
		return
	}
	if p.dropAfter {
		drop(w)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, r, http.StatusOK, tokenAnswer{
		AccessToken: tok,
		ExpiresIn:   max(1, int64(e.tokenTTL/time.Second)),
		TokenType:   "bearer",
	}, p.slowLoris)
}

func writeOAuthError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
}
