package sinchtest

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// authenticate checks Basic key credentials or a bearer token the emulator
// issued, and answers 401 UNAUTHENTICATED when they do not hold.
func (e *Emulator) authenticate(w http.ResponseWriter, r *http.Request) bool {
	h := r.Header.Get("Authorization")
	switch {
	case strings.HasPrefix(h, "Basic "):
		if id, secret, ok := r.BasicAuth(); ok && e.validKey(id, secret) {
			return true
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="sinch"`)
	case strings.HasPrefix(h, "Bearer "):
		expiry, known := e.tokenExpiry(strings.TrimPrefix(h, "Bearer "))
		switch {
		case known && e.now().Before(expiry):
			return true
		case known:
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="The access token expired"`)
		default:
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="The access token is invalid"`)
		}
	default:
		w.Header().Set("WWW-Authenticate", `Basic realm="sinch", Bearer`)
	}
	writeError(w, http.StatusUnauthorized, "UNAUTHENTICATED", "Request had invalid credentials.")
	return false
}

func (e *Emulator) validKey(id, secret string) bool {
	idOK := subtle.ConstantTimeCompare([]byte(id), []byte(e.keyID)) == 1
	secretOK := subtle.ConstantTimeCompare([]byte(secret), []byte(e.keySecret)) == 1
	return idOK && secretOK
}

func (e *Emulator) tokenExpiry(tok string) (time.Time, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	exp, ok := e.tokens[tok]
	return exp, ok
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
// client_credentials. Its errors use the OAuth2 shape, not Sinch's.
func (e *Emulator) serveToken(w http.ResponseWriter, r *http.Request) {
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
	raw := make([]byte, 32)
	rand.Read(raw)
	tok := base64.RawURLEncoding.EncodeToString(raw)
	e.mu.Lock()
	e.tokens[tok] = e.now().Add(e.tokenTTL)
	e.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(tokenAnswer{
		AccessToken: tok,
		ExpiresIn:   max(1, int64(e.tokenTTL/time.Second)),
		TokenType:   "bearer",
	})
}

func writeOAuthError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
}
