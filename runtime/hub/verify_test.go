package hub

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

const goodBody = `{"id":"t-1","trigger":"backup","params":{"storage":"usb"}}`

// verifyCase is one request and the answer Verify must give it.
type verifyCase struct {
	name   string
	req    func() *http.Request
	status int    // 0: accepted
	public string // substring of Rejection.Public
}

// withHeader returns a good signed POST with one header changed (or
// deleted, when value is "").
func withHeader(name, value string) func() *http.Request {
	return func() *http.Request {
		r := signedRequest(testPriv, testKeyID, "POST", "/v1/triggers", []byte(goodBody), testNow)
		if value == "" {
			r.Header.Del(name)
		} else {
			r.Header.Set(name, value)
		}
		return r
	}
}

// signedAt is a good POST signed at testNow+offset.
func signedAt(offset time.Duration) func() *http.Request {
	return func() *http.Request {
		return signedRequest(testPriv, testKeyID, "POST", "/v1/triggers", []byte(goodBody), testNow.Add(offset))
	}
}

// signedAs is a request signed for method/path/body but sent as
// sendMethod/sendPath/sendBody.
func signedAs(method, path, body, sendMethod, sendPath, sendBody string) func() *http.Request {
	return func() *http.Request {
		r := httptest.NewRequest(sendMethod, sendPath, strings.NewReader(sendBody))
		for k, v := range Sign(testPriv, testKeyID, method, path, []byte(body), testNow) {
			r.Header[k] = v
		}
		return r
	}
}

var verifyCases = []verifyCase{
	{name: "good POST", req: signedAt(0)},
	{name: "good GET empty body", req: func() *http.Request {
		return signedRequest(testPriv, testKeyID, "GET", "/v1/runs/r-1", nil, testNow)
	}},
	{name: "300s in the past is still fresh", req: signedAt(-300 * time.Second)},
	{name: "300s in the future is still fresh", req: signedAt(300 * time.Second)},
	{name: "body of exactly MaxBody", req: func() *http.Request {
		return signedRequest(testPriv, testKeyID, "POST", "/v1/triggers", bytes.Repeat([]byte{' '}, DefaultMaxBody), testNow)
	}},

	{name: "unsigned", status: 401, public: "missing X-Felhom-Key", req: func() *http.Request {
		return httptest.NewRequest("POST", "/v1/triggers", strings.NewReader(goodBody))
	}},
	{name: "no key header", status: 401, public: "missing X-Felhom-Key", req: withHeader(HeaderKey, "")},
	{name: "no timestamp header", status: 401, public: "missing X-Felhom-Timestamp", req: withHeader(HeaderTimestamp, "")},
	{name: "no signature header", status: 401, public: "missing X-Felhom-Signature", req: withHeader(HeaderSignature, "")},
	{name: "two signature headers", status: 401, public: "more than one X-Felhom-Signature", req: func() *http.Request {
		r := signedAt(0)()
		r.Header.Add(HeaderSignature, r.Header.Get(HeaderSignature))
		return r
	}},
	{name: "unknown key id", status: 401, public: "unknown key id", req: withHeader(HeaderKey, "hub-2")},
	{name: "key id differing in case", status: 401, public: "unknown key id", req: withHeader(HeaderKey, "HUB-1")},
	{name: "signed by another key", status: 401, public: "does not verify", req: func() *http.Request {
		return signedRequest(otherPriv, testKeyID, "POST", "/v1/triggers", []byte(goodBody), testNow)
	}},
	{name: "forged body", status: 401, public: "does not verify",
		req: signedAs("POST", "/v1/triggers", goodBody, "POST", "/v1/triggers", strings.Replace(goodBody, "usb", "nas", 1))},
	{name: "body signed, none sent", status: 401, public: "does not verify",
		req: signedAs("POST", "/v1/triggers", goodBody, "POST", "/v1/triggers", "")},
	{name: "other method signed", status: 401, public: "does not verify",
		req: signedAs("PUT", "/v1/triggers", goodBody, "POST", "/v1/triggers", goodBody)},
	{name: "other path signed", status: 401, public: "does not verify",
		req: signedAs("GET", "/v1/runs/r-1", "", "GET", "/v1/runs/r-2", "")},
	{name: "query is not the path", status: 401, public: "does not verify",
		req: signedAs("GET", "/v1/runs/r-1?x=1", "", "GET", "/v1/runs/r-1?x=1", "")},
	{name: "stale: 301s in the past", status: 401, public: "outside the allowed window", req: signedAt(-301 * time.Second)},
	{name: "future: 301s ahead", status: 401, public: "outside the allowed window", req: signedAt(301 * time.Second)},
	{name: "timestamp zero", status: 401, public: "outside the allowed window", req: withHeader(HeaderTimestamp, "0")},
	{name: "timestamp far future", status: 401, public: "outside the allowed window", req: withHeader(HeaderTimestamp, "999999999999999999")},
	{name: "timestamp not numeric", status: 401, public: "malformed timestamp", req: withHeader(HeaderTimestamp, "yesterday")},
	{name: "timestamp with sign", status: 401, public: "malformed timestamp", req: withHeader(HeaderTimestamp, "+"+strconv.FormatInt(testNow.Unix(), 10))},
	{name: "timestamp negative", status: 401, public: "malformed timestamp", req: withHeader(HeaderTimestamp, "-1")},
	{name: "timestamp in milliseconds overflows", status: 401, public: "malformed timestamp", req: withHeader(HeaderTimestamp, "17500000000000000000")},
	{name: "timestamp fractional", status: 401, public: "malformed timestamp", req: withHeader(HeaderTimestamp, "1750000000.5")},
	{name: "signature not base64", status: 401, public: "malformed signature", req: withHeader(HeaderSignature, "not base64!")},
	{name: "signature in URL-safe base64", status: 401, public: "malformed signature", req: func() *http.Request {
		r := signedAt(0)()
		r.Header.Set(HeaderSignature, "-"+r.Header.Get(HeaderSignature)[1:])
		return r
	}},
	{name: "signature too short", status: 401, public: "malformed signature", req: withHeader(HeaderSignature, "AAAA")},
	{name: "oversized body by Content-Length", status: 413, public: "too large", req: func() *http.Request {
		return signedRequest(testPriv, testKeyID, "POST", "/v1/triggers", bytes.Repeat([]byte{' '}, DefaultMaxBody+1), testNow)
	}},
	{name: "oversized body without Content-Length", status: 413, public: "too large", req: func() *http.Request {
		body := bytes.Repeat([]byte{' '}, DefaultMaxBody+1)
		r := signedRequest(testPriv, testKeyID, "POST", "/v1/triggers", body, testNow)
		r.ContentLength = -1
		r.Body = io.NopCloser(bytes.NewReader(body))
		return r
	}},
	{name: "body read fails", status: 400, public: "cannot read", req: func() *http.Request {
		r := signedAt(0)()
		r.ContentLength = -1
		r.Body = io.NopCloser(io.MultiReader(strings.NewReader("{"), errReader{}))
		return r
	}},
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestVerify(t *testing.T) {
	v := testVerifier()
	for _, c := range verifyCases {
		t.Run(c.name, func(t *testing.T) {
			body, key, err := v.Verify(c.req())
			if c.status == 0 {
				if err != nil {
					t.Fatalf("Verify = %v; want success", err)
				}
				if key != testKeyID {
					t.Errorf("Verify key = %q; want %q", key, testKeyID)
				}
				return
			}
			var rj *Rejection
			if !errors.As(err, &rj) {
				t.Fatalf("Verify = %v (%T); want *Rejection %d", err, err, c.status)
			}
			if rj.Status != c.status || !strings.Contains(rj.Public, c.public) {
				t.Errorf("Verify = %d %q; want %d containing %q", rj.Status, rj.Public, c.status, c.public)
			}
			if body != nil || key != "" {
				t.Errorf("Verify rejected but returned body %q, key %q", body, key)
			}
			assertNoSecrets(t, "Rejection.Error()", rj.Error())
			assertNoSecrets(t, "Rejection.Public", rj.Public)
		})
	}
}

func TestVerifyOptions(t *testing.T) {
	t.Run("MaxSkew", func(t *testing.T) {
		v := testVerifier()
		v.MaxSkew = 10 * time.Second
		if _, _, err := v.Verify(signedAt(10 * time.Second)()); err != nil {
			t.Errorf("10s off with MaxSkew 10s: %v", err)
		}
		if _, _, err := v.Verify(signedAt(11 * time.Second)()); err == nil {
			t.Error("11s off with MaxSkew 10s verified; want rejection")
		}
	})
	t.Run("MaxBody", func(t *testing.T) {
		v := testVerifier()
		v.MaxBody = 8
		r := signedRequest(testPriv, testKeyID, "POST", "/v1/triggers", []byte("123456789"), testNow)
		var rj *Rejection
		if _, _, err := v.Verify(r); !errors.As(err, &rj) || rj.Status != 413 {
			t.Errorf("9 bytes with MaxBody 8 = %v; want 413", err)
		}
	})
	t.Run("nil Now uses the clock", func(t *testing.T) {
		v := &Verifier{Keys: Keys{testKeyID: testPub}}
		if _, _, err := v.Verify(signedRequest(testPriv, testKeyID, "POST", "/x", nil, time.Now())); err != nil {
			t.Errorf("signed now: %v", err)
		}
	})
	t.Run("no keys accepts nothing", func(t *testing.T) {
		v := &Verifier{Now: func() time.Time { return testNow }}
		if _, _, err := v.Verify(signedAt(0)()); err == nil {
			t.Error("Verify with no keys succeeded")
		}
	})
	t.Run("hand-built key of the wrong size", func(t *testing.T) {
		v := testVerifier()
		v.Keys = Keys{testKeyID: ed25519.PublicKey(testPub[:16])}
		var rj *Rejection
		if _, _, err := v.Verify(signedAt(0)()); !errors.As(err, &rj) || rj.Status != 401 {
			t.Errorf("Verify with a 16-byte key = %v; want 401", err)
		}
	})
}
