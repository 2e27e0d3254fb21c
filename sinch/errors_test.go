package sinch_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/syncd/syncd/sinch"
)

func TestDecodeError(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name       string
		status     int
		header     http.Header
		body       string
		want       sinch.APIError
		wantDetail int
	}{
		{"Sinch body", 404, nil, `{"error":{"code":404,"message":"contact not found","status":"NOT_FOUND","details":[{"type_url":"t","value":"v"}]}}`,
			sinch.APIError{HTTPStatus: 404, Code: 404, Message: "contact not found", Status: "NOT_FOUND"}, 1},
		{"unwrapped body from the spec's examples", 400, nil, `{"code":400,"message":"Malformed request","status":"INVALID_REQUEST","details":[]}`,
			sinch.APIError{HTTPStatus: 400, Code: 400, Message: "Malformed request", Status: "INVALID_REQUEST"}, 0},
		{"HTML from a proxy", 502, nil, "<html>\n<body>Bad   Gateway</body></html>",
			sinch.APIError{HTTPStatus: 502, Code: 502, Message: "<html> <body>Bad Gateway</body></html>", Status: "INTERNAL"}, 0},
		{"empty body", 503, nil, "",
			sinch.APIError{HTTPStatus: 503, Code: 503, Message: "Service Unavailable", Status: "UNAVAILABLE"}, 0},
		{"error without code or status", 429, http.Header{"Retry-After": {"7"}}, `{"error":{"message":"slow down"}}`,
			sinch.APIError{HTTPStatus: 429, Code: 429, Message: "slow down", Status: "RESOURCE_EXHAUSTED", RetryAfter: 7 * time.Second}, 0},
		{"Retry-After as a date", 429, http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}, `{}`,
			sinch.APIError{HTTPStatus: 429, Code: 429, Message: "{}", Status: "RESOURCE_EXHAUSTED", RetryAfter: 90 * time.Second}, 0},
		{"JSON of another shape", 500, nil, `[1,2,3]`,
			sinch.APIError{HTTPStatus: 500, Code: 500, Message: "[1,2,3]", Status: "INTERNAL"}, 0},
		{"RetryInfo of the README's example", 429, nil,
			`{"error":{"code":429,"message":"rate limited","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retry_delay":"2s"}]}}`,
			sinch.APIError{HTTPStatus: 429, Code: 429, Message: "rate limited", Status: "RESOURCE_EXHAUSTED", RetryAfter: 2 * time.Second}, 1},
		{"RetryInfo in fractions, beside another detail", 503, nil,
			`{"error":{"code":503,"message":"busy","status":"UNAVAILABLE","details":[{"@type":"type.googleapis.com/google.rpc.ResourceInfo"},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retry_delay":"1.5s"}]}}`,
			sinch.APIError{HTTPStatus: 503, Code: 503, Message: "busy", Status: "UNAVAILABLE", RetryAfter: 1500 * time.Millisecond}, 2},
		{"RetryInfo as a Duration object, longer than Retry-After", 429, http.Header{"Retry-After": {"1"}},
			`{"error":{"code":429,"message":"m","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":{"seconds":"4","nanos":500000000}}]}}`,
			sinch.APIError{HTTPStatus: 429, Code: 429, Message: "m", Status: "RESOURCE_EXHAUSTED", RetryAfter: 4500 * time.Millisecond}, 1},
		{"Retry-After longer than RetryInfo", 429, http.Header{"Retry-After": {"9"}},
			`{"error":{"code":429,"message":"m","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retry_delay":"2s"}]}}`,
			sinch.APIError{HTTPStatus: 429, Code: 429, Message: "m", Status: "RESOURCE_EXHAUSTED", RetryAfter: 9 * time.Second}, 1},
		{"nonsense retry delays", 429, nil,
			`{"error":{"code":429,"message":"m","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retry_delay":"soon"},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retry_delay":"-3s"},{"@type":"other","retry_delay":"5s"}]}}`,
			sinch.APIError{HTTPStatus: 429, Code: 429, Message: "m", Status: "RESOURCE_EXHAUSTED"}, 3},
		{"a year of delay is capped at a day", 429, nil,
			`{"error":{"code":429,"message":"m","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retry_delay":"31536000s"}]}}`,
			sinch.APIError{HTTPStatus: 429, Code: 429, Message: "m", Status: "RESOURCE_EXHAUSTED", RetryAfter: 24 * time.Hour}, 1},
		{"non-canonical status of the spec", 500, nil, `{"error":{"code":500,"message":"oops","status":"INTERNAL_ERROR","details":[]}}`,
			sinch.APIError{HTTPStatus: 500, Code: 500, Message: "oops", Status: "INTERNAL_ERROR"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sinch.DecodeError(sinch.OpGet, tt.status, tt.header, []byte(tt.body), now)
			if len(got.Details) != tt.wantDetail {
				t.Errorf("%d details, want %d", len(got.Details), tt.wantDetail)
			}
			got.Details = nil
			tt.want.Operation = sinch.OpGet
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

func TestDecodeErrorTruncatesLongBodies(t *testing.T) {
	body := strings.Repeat("é", 1000)
	got := sinch.DecodeError(sinch.OpGet, 500, nil, []byte(body), time.Now())
	if len(got.Message) > 256 || !utf8.ValidString(got.Message) {
		t.Errorf("message of %d bytes, valid UTF-8 %v", len(got.Message), utf8.ValidString(got.Message))
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"3", 3 * time.Second},
		{" 12 ", 12 * time.Second},
		{"-5", 0},
		{"1.5", 0},
		{"soon", 0},
		{"99999999999999", 24 * time.Hour},
		{now.Add(time.Minute).Format(http.TimeFormat), time.Minute},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := sinch.ParseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestAPIErrorString(t *testing.T) {
	e := &sinch.APIError{HTTPStatus: 404, Code: 404, Status: "NOT_FOUND", Message: "contact not found", Operation: "get"}
	if got, want := e.Error(), "sinch get: HTTP 404 NOT_FOUND: contact not found"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
	wrapped := fmt.Errorf("syncing: %w", e)
	if !sinch.IsNotFound(wrapped) || sinch.IsRateLimited(wrapped) {
		t.Error("IsNotFound/IsRateLimited do not see through wrapping")
	}
}

func FuzzDecodeError(f *testing.F) {
	for _, name := range []string{"errors-numbers/not-found-error.json", "errors-numbers/error-trial-account.json"} {
		raw, err := os.ReadFile(filepath.Join(fixtureDir, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(404, string(raw), "")
	}
	f.Add(429, `{"error":{"code":429}}`, "5")
	f.Add(502, "<html>bad gateway</html>", "Wed, 21 Oct 2015 07:28:00 GMT")
	f.Add(500, `{"code":"nope","details":{}}`, "-1")
	f.Add(503, "\xff\xfe", "")
	f.Fuzz(func(t *testing.T, status int, body, retryAfter string) {
		if status < 100 || status > 999 {
			t.Skip()
		}
		e := sinch.DecodeError(sinch.OpList, status, http.Header{"Retry-After": {retryAfter}}, []byte(body), time.Now())
		if e == nil || e.HTTPStatus != status || e.Operation != sinch.OpList {
			t.Fatalf("decoded %+v", e)
		}
		if e.Code == 0 || e.Status == "" || e.Message == "" && http.StatusText(status) != "" {
			t.Errorf("decoded %+v: code, status or message missing", e)
		}
		if e.RetryAfter < 0 || e.RetryAfter > 24*time.Hour {
			t.Errorf("retry after %v", e.RetryAfter)
		}
		s := e.Error()
		if !utf8.ValidString(s) || strings.ContainsAny(s, "\n\r") && !json.Valid([]byte(body)) {
			t.Errorf("error string %q", s)
		}
	})
}
