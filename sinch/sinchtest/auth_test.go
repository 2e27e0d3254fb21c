package sinchtest_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/syncd/syncd/sinch/sinchtest"
)

// The access token is a JWT whose exp is what expires_in says, as Sinch's
// is: the Node SDK reads exp to refresh ahead of time.
func TestTokenIsAJWTWithExp(t *testing.T) {
	clk := newFakeClock()
	_, srv := sinchtest.Start(t, sinchtest.Options{TokenTTL: 90 * time.Minute, Clock: clk.Now})
	a := send(t, srv, "POST", "/oauth2/token", tokenForm("client_credentials"), formBody)
	var answer struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
		TokenType   string `json:"token_type"`
	}
	if err := json.Unmarshal(a.body, &answer); err != nil {
		t.Fatal(err)
	}
	var claims jwt.RegisteredClaims
	tok, _, err := jwt.NewParser().ParseUnverified(answer.AccessToken, &claims)
	if err != nil {
		t.Fatalf("access_token %q is not a JWT: %v", answer.AccessToken, err)
	}
	if tok.Method.Alg() != "HS256" || claims.ExpiresAt == nil || claims.IssuedAt == nil {
		t.Fatalf("header %v, claims %+v", tok.Header, claims)
	}
	if got, want := claims.ExpiresAt.Time, clk.Now().Add(90*time.Minute); !got.Equal(want) {
		t.Errorf("exp %s, want %s", got, want)
	}
	if answer.ExpiresIn != 5400 || !strings.EqualFold(answer.TokenType, "bearer") || claims.Subject != sinchtest.DefaultKeyID {
		t.Errorf("answer %+v, sub %q", answer, claims.Subject)
	}
	if other := fetchToken(t, srv); other == answer.AccessToken {
		t.Error("two tokens issued in one second are the same")
	}
}

// Only the emulator's own tokens are taken: one signed otherwise, or with
// another algorithm, is refused as invalid, not as expired.
func TestForeignTokensAreRefused(t *testing.T) {
	clk := newFakeClock()
	_, srv := sinchtest.Start(t, sinchtest.Options{Clock: clk.Now})
	claims := jwt.RegisteredClaims{Issuer: "sinchtest", Subject: sinchtest.DefaultKeyID,
		IssuedAt: jwt.NewNumericDate(clk.Now()), ExpiresAt: jwt.NewNumericDate(clk.Now().Add(time.Hour))}
	forged, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte("a guessed key"))
	if err != nil {
		t.Fatal(err)
	}
	unsigned, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	real := fetchToken(t, srv)
	tampered := real[:len(real)-2] + map[bool]string{true: "AA", false: "BB"}[!strings.HasSuffix(real, "AA")]
	for name, tok := range map[string]string{"forged": forged, "alg none": unsigned, "tampered": tampered, "opaque": "not-a-jwt"} {
		t.Run(name, func(t *testing.T) {
			a := send(t, srv, "GET", projectPath+"/contacts", "", withHeader("Authorization", "Bearer "+tok))
			if a.status != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", a.status)
			}
			if h := a.header.Get("WWW-Authenticate"); !strings.Contains(h, `error="invalid_token"`) || strings.Contains(h, "expired") {
				t.Errorf("WWW-Authenticate %q", h)
			}
		})
	}
}

// The token endpoint has its own faults, apart from the contacts
// endpoints': its errors are in the OAuth2 shape, and its 429s carry no
// Retry-After, as Sinch's token bucket sends none.
func TestTokenFaults(t *testing.T) {
	tests := []struct {
		name   string
		faults sinchtest.Faults
		want   []int // statuses of three token requests; 0: dropped
	}{
		{"5xx", sinchtest.Faults{ErrorRate: 1}, []int{500, 500, 500}},
		{"429", sinchtest.Faults{TooManyRequestsRate: 1}, []int{429, 429, 429}},
		{"bucket of two", sinchtest.Faults{RateLimitRPS: 0.001, RateLimitBurst: 2}, []int{200, 200, 429}},
		{"drop before", sinchtest.Faults{DropBeforeRate: 1}, []int{0, 0, 0}},
		{"drop after", sinchtest.Faults{DropAfterRate: 1}, []int{0, 0, 0}},
		{"no limit", sinchtest.Faults{RateLimitRPS: -1}, []int{200, 200, 200}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, srv := sinchtest.Start(t, sinchtest.Options{TokenFaults: tt.faults})
			var got []int
			for range 3 {
				a, err := trySend(t, srv, "POST", "/oauth2/token", tokenForm("client_credentials"), formBody)
				switch {
				case err != nil:
					got = append(got, 0)
					continue
				case a.status == 503:
					a.status = 500
				}
				got = append(got, a.status)
				if a.status == 429 && a.header.Get("Retry-After") != "" {
					t.Errorf("a 429 with Retry-After %q", a.header.Get("Retry-After"))
				}
				if a.status >= 400 {
					var m map[string]string
					if err := json.Unmarshal(a.body, &m); err != nil || m["error"] == "" {
						t.Errorf("error body %s is not OAuth2's", a.body)
					}
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("statuses %v, want %v", got, tt.want)
			}
			if n := e.Calls(sinchtest.OpToken); n != 3 {
				t.Errorf("%d token calls counted, want 3", n)
			}
			// The contacts endpoints meet none of it.
			if a := send(t, srv, "GET", projectPath+"/contacts", ""); a.status != 200 {
				t.Errorf("a list with Basic auth: %d", a.status)
			}
		})
	}
}

// By default the token endpoint is Sinch's bucket: TokenRateLimitBurst
// tokens at once, and the one after is refused while the bucket refills
// (at TokenRateLimitRPS: all of these would pass only if they took half
// a minute).
func TestTokenEndpointRateLimitByDefault(t *testing.T) {
	_, srv := sinchtest.Start(t, sinchtest.Options{})
	refused := 0
	for range sinchtest.TokenRateLimitBurst * 10 {
		if a := send(t, srv, "POST", "/oauth2/token", tokenForm("client_credentials"), formBody); a.status == http.StatusTooManyRequests {
			refused++
		}
	}
	if refused == 0 {
		t.Errorf("%d token requests in a row, none refused", sinchtest.TokenRateLimitBurst*10)
	}
}
