package hub

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"testing"
)

// FuzzVerifyTrigger feeds Verify arbitrary headers, methods, paths and
// bodies. It checks that nothing panics, that every failure is a
// *Rejection with a public message and no key material, that a genuine
// signature over any body verifies and returns that body, that a changed
// byte never verifies, and that ParseTrigger holds its promises on
// whatever a verified request carries.
func FuzzVerifyTrigger(f *testing.F) {
	for _, c := range verifyCases {
		r := c.req()
		body, _ := io.ReadAll(r.Body)
		f.Add(r.Method, r.URL.Path, r.Header.Get(HeaderKey), r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature), body)
	}
	for _, c := range triggerCases {
		f.Add("POST", "/v1/triggers", testKeyID, "1750000000", "", []byte(c.body))
	}
	v := testVerifier()
	f.Fuzz(func(t *testing.T, method, path, keyID, ts, sig string, body []byte) {
		// 1. Arbitrary headers.
		h := http.Header{}
		for name, val := range map[string]string{HeaderKey: keyID, HeaderTimestamp: ts, HeaderSignature: sig} {
			if val != "" {
				h.Set(name, val)
			}
		}
		got, _, err := v.Verify(request(method, path, h, body))
		if err != nil {
			checkRejection(t, err, 400, 401, 413)
		} else if !bytes.Equal(got, body) {
			t.Fatalf("Verify returned %d bytes of a %d-byte body", len(got), len(body))
		}

		// 2. A genuine signature over the same request.
		signed := Sign(testPriv, testKeyID, method, path, body, testNow)
		got, key, err := v.Verify(request(method, path, signed, body))
		switch {
		case len(body) > DefaultMaxBody:
			checkRejection(t, err, 413)
			return
		case err != nil:
			t.Fatalf("Verify(genuine signature over %q %q, %d bytes) = %v", method, path, len(body), err)
		case key != testKeyID || !bytes.Equal(got, body):
			t.Fatalf("Verify(genuine) = key %q, %d bytes; want %q, %d", key, len(got), testKeyID, len(body))
		}

		// 3. One changed byte of the body breaks it.
		if len(body) > 0 {
			forged := bytes.Clone(body)
			forged[len(forged)/2] ^= 0x01
			_, _, err := v.Verify(request(method, path, signed, forged))
			checkRejection(t, err, 401)
		}

		// 4. What a verified request carries is parsed safely.
		if tr, err := ParseTrigger(got); err != nil {
			checkRejection(t, err, 400)
		} else {
			checkTrigger(t, got, tr)
		}
	})
}

// request builds a server-side request without the validation of
// httptest.NewRequest, which panics on what a fuzzer produces.
func request(method, path string, h http.Header, body []byte) *http.Request {
	return &http.Request{
		Method:        method,
		URL:           &url.URL{Path: path},
		Header:        h.Clone(),
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
	}
}

// checkRejection asserts err is a *Rejection with one of statuses, a
// public message and no key material.
func checkRejection(t *testing.T, err error, statuses ...int) {
	t.Helper()
	var rj *Rejection
	if !errors.As(err, &rj) {
		t.Fatalf("err = %v (%T); want a *Rejection", err, err)
	}
	ok := false
	for _, s := range statuses {
		ok = ok || rj.Status == s
	}
	if !ok || rj.Public == "" {
		t.Fatalf("rejection %d %q; want one of %v with a public message", rj.Status, rj.Public, statuses)
	}
	assertNoSecrets(t, "Rejection", rj.Error())
}
