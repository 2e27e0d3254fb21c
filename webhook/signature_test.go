package webhook

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// The vector of the .NET SDK's WebhooksTests.ValidateRequest (webhooks.md).
const (
	vectorSecret    = "foo_secret1234"
	vectorNonce     = "01FJA8B4A7BM43YGWSG9GBV067"
	vectorTimestamp = 1634579353
	vectorBody      = `{"app_id":"","accepted_time":"2021-10-18T17:49:13.813615Z","project_id":"e2df3a34-a71b-4448-9db5-a8d2baad28e4","contact_create_notification":{"contact":{"id":"01FJA8B466Y0R2GNXD78MD9SM1","channel_identities":[{"channel":"SMS","identity":"48123456789","app_id":""}],"display_name":"New Test Contact","email":"new.contact@email.com","external_id":"","metadata":"","language":"EN_US"}},"message_metadata":""}`
	vectorSignature = "6bpJoRmFoXVjfJIVglMoJzYXxnoxRujzR4k2GOXewOE="
)

func vectorHeader() http.Header {
	h := http.Header{}
	h.Set(HeaderTimestamp, strconv.Itoa(vectorTimestamp))
	h.Set(HeaderNonce, vectorNonce)
	h.Set(HeaderAlgorithm, AlgorithmSHA256)
	h.Set(HeaderSignature, vectorSignature)
	return h
}

func TestSinchTestVector(t *testing.T) {
	sig, err := ParseSignature(vectorHeader())
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(vectorTimestamp, 0)
	if err := sig.Verify([]byte(vectorSecret), []byte(vectorBody), at.Add(time.Minute)); err != nil {
		t.Fatalf("the SDK's own vector does not verify: %v", err)
	}
	// Sign makes the same header: the emulator signs as Sinch does.
	h := http.Header{}
	Sign(h, []byte(vectorSecret), []byte(vectorBody), vectorNonce, at)
	if got := h.Get(HeaderSignature); got != vectorSignature {
		t.Errorf("Sign = %q, want %q", got, vectorSignature)
	}
}

func TestVerifyRefuses(t *testing.T) {
	at := time.Unix(vectorTimestamp, 0)
	tests := []struct {
		name   string
		header func(h http.Header)
		body   string
		secret string
		now    time.Time
		want   error
	}{
		{"no signature", func(h http.Header) { h.Del(HeaderSignature) }, vectorBody, vectorSecret, at, ErrMissingSignature},
		{"no nonce", func(h http.Header) { h.Del(HeaderNonce) }, vectorBody, vectorSecret, at, ErrMissingSignature},
		{"no timestamp", func(h http.Header) { h.Del(HeaderTimestamp) }, vectorBody, vectorSecret, at, ErrMissingSignature},
		{"unknown algorithm", func(h http.Header) { h.Set(HeaderAlgorithm, "HmacMD5") }, vectorBody, vectorSecret, at, ErrBadSignature},
		{"SHA512 header on a SHA256 MAC", func(h http.Header) { h.Set(HeaderAlgorithm, AlgorithmSHA512) }, vectorBody, vectorSecret, at, ErrBadSignature},
		{"not base64", func(h http.Header) { h.Set(HeaderSignature, "6bpJoRmF!") }, vectorBody, vectorSecret, at, ErrBadSignature},
		{"unpadded base64", func(h http.Header) { h.Set(HeaderSignature, vectorSignature[:len(vectorSignature)-1]) }, vectorBody, vectorSecret, at, ErrBadSignature},
		{"timestamp not a number", func(h http.Header) { h.Set(HeaderTimestamp, "1634579353.5") }, vectorBody, vectorSecret, at, ErrBadSignature},
		{"timestamp changed", func(h http.Header) { h.Set(HeaderTimestamp, "1634579354") }, vectorBody, vectorSecret, at, ErrBadSignature},
		{"nonce changed", func(h http.Header) { h.Set(HeaderNonce, "01FJA8B4A7BM43YGWSG9GBV068") }, vectorBody, vectorSecret, at, ErrBadSignature},
		{"body changed", func(http.Header) {}, vectorBody + " ", vectorSecret, at, ErrBadSignature},
		{"another secret", func(http.Header) {}, vectorBody, "foo_secret1235", at, ErrBadSignature},
		{"over five minutes late", func(http.Header) {}, vectorBody, vectorSecret, at.Add(MaxSkew + time.Second), ErrStale},
		{"over five minutes early", func(http.Header) {}, vectorBody, vectorSecret, at.Add(-MaxSkew - time.Second), ErrStale},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := vectorHeader()
			tt.header(h)
			sig, err := ParseSignature(h)
			if err == nil {
				err = sig.Verify([]byte(tt.secret), []byte(tt.body), tt.now)
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("five minutes either way is accepted", func(t *testing.T) {
		sig, err := ParseSignature(vectorHeader())
		if err != nil {
			t.Fatal(err)
		}
		for _, now := range []time.Time{at.Add(MaxSkew), at.Add(-MaxSkew)} {
			if err := sig.Verify([]byte(vectorSecret), []byte(vectorBody), now); err != nil {
				t.Errorf("at %s: %v", now.Sub(at), err)
			}
		}
	})
	t.Run("HmacSHA512", func(t *testing.T) {
		h := http.Header{}
		SignWith(h, AlgorithmSHA512, []byte(vectorSecret), []byte(vectorBody), vectorNonce, at)
		sig, err := ParseSignature(h)
		if err != nil {
			t.Fatal(err)
		}
		if err := sig.Verify([]byte(vectorSecret), []byte(vectorBody), at); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzParseSignature feeds the header parser and the check arbitrary
// headers: no panic, every error is a Refusal, and a signature that
// verifies is the one Sign makes.
func FuzzParseSignature(f *testing.F) {
	f.Add(strconv.Itoa(vectorTimestamp), vectorNonce, AlgorithmSHA256, vectorSignature, vectorBody)
	f.Add("", "", "", "", "")
	f.Add("-1", "n", AlgorithmSHA512, "AA==", "{}")
	f.Add("99999999999999999999", "a b", "x", "////", "")
	f.Fuzz(func(t *testing.T, ts, nonce, alg, sig, body string) {
		h := http.Header{}
		h.Set(HeaderTimestamp, ts)
		h.Set(HeaderNonce, nonce)
		h.Set(HeaderAlgorithm, alg)
		h.Set(HeaderSignature, sig)
		s, err := ParseSignature(h)
		if err != nil {
			var ref *Refusal
			if !errors.As(err, &ref) || ref.Status != http.StatusUnauthorized {
				t.Fatalf("ParseSignature error %v is not a 401 refusal", err)
			}
			return
		}
		if s.Nonce != h.Get(HeaderNonce) || len(s.MAC) == 0 || s.Timestamp < 0 {
			t.Fatalf("parsed %+v from %v", s, h)
		}
		err = s.Verify([]byte(vectorSecret), []byte(body), time.Unix(s.Timestamp, 0))
		if err == nil {
			want := http.Header{}
			SignWith(want, s.Algorithm, []byte(vectorSecret), []byte(body), s.Nonce, time.Unix(s.Timestamp, 0))
			if want.Get(HeaderSignature) != h.Get(HeaderSignature) {
				t.Fatalf("a signature verified that Sign would not make: %v", h)
			}
		}
	})
}
