package hub

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/signature-vectors.json from Sign")

// The test keys: fixed seeds, so that the vectors in testdata are stable.
var (
	testPriv  = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x42}, ed25519.SeedSize))
	testPub   = testPriv.Public().(ed25519.PublicKey)
	otherPriv = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x17}, ed25519.SeedSize))
	testNow   = time.Unix(1_750_000_000, 0)
)

const testKeyID = "hub-1"

func testVerifier() *Verifier {
	return &Verifier{Keys: Keys{testKeyID: testPub}, Now: func() time.Time { return testNow }}
}

// secrets are the printable forms of the test keys that must never appear
// in an error, a rejection or a log line.
func secrets() []string {
	var out []string
	for _, b := range [][]byte{testPub, testPriv, testPriv.Seed()} {
		out = append(out,
			base64.StdEncoding.EncodeToString(b),
			base64.RawStdEncoding.EncodeToString(b),
			hex.EncodeToString(b))
	}
	return out
}

func assertNoSecrets(t testing.TB, what, s string) {
	t.Helper()
	for _, sec := range secrets() {
		if strings.Contains(s, sec) {
			t.Errorf("%s contains key material: %q", what, s)
		}
	}
}

// signedRequest builds a request signed with priv at now.
func signedRequest(priv ed25519.PrivateKey, keyID, method, path string, body []byte, now time.Time) *http.Request {
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	for k, v := range Sign(priv, keyID, method, r.URL.Path, body, now) {
		r.Header[k] = v
	}
	return r
}

// vector is one known-answer case for implementers of the signing side.
type vector struct {
	Name      string `json:"name"`
	Seed      string `json:"seed_hex"` // test-only private key seed
	PublicKey string `json:"public_key"`
	KeyID     string `json:"key_id"`
	Method    string `json:"method"`
	Path      string `json:"path"`
	Timestamp int64  `json:"timestamp"`
	Body      string `json:"body"`
	Message   string `json:"message"` // the exact signed bytes
	Signature string `json:"signature"`
}

func TestSignatureVectors(t *testing.T) {
	path := filepath.Join("testdata", "signature-vectors.json")
	cases := []struct{ name, method, path, body string }{
		{"trigger", "POST", "/v1/triggers", `{"id":"t-1","trigger":"backup","params":{"storage":"usb"}}`},
		{"run status", "GET", "/v1/runs/r-123", ""},
	}
	var got []vector
	for _, c := range cases {
		h := Sign(testPriv, testKeyID, c.method, c.path, []byte(c.body), testNow)
		got = append(got, vector{
			Name: c.name, Seed: hex.EncodeToString(testPriv.Seed()),
			PublicKey: base64.StdEncoding.EncodeToString(testPub), KeyID: h.Get(HeaderKey),
			Method: c.method, Path: c.path, Timestamp: testNow.Unix(), Body: c.body,
			Message:   string(SignedMessage(c.method, c.path, h.Get(HeaderTimestamp), []byte(c.body))),
			Signature: h.Get(HeaderSignature),
		})
	}
	if *update {
		b, _ := json.MarshalIndent(got, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want []vector
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	if len(want) != len(got) {
		t.Fatalf("%s has %d vectors; want %d (run with -update)", path, len(want), len(got))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("vector %q = %+v; want %+v", want[i].Name, got[i], want[i])
		}
		// The stored vector must verify on its own, from its own fields.
		w := want[i]
		r := httptest.NewRequest(w.Method, w.Path, strings.NewReader(w.Body))
		r.Header.Set(HeaderKey, w.KeyID)
		r.Header.Set(HeaderTimestamp, "1750000000")
		r.Header.Set(HeaderSignature, w.Signature)
		pub, _ := base64.StdEncoding.DecodeString(w.PublicKey)
		v := &Verifier{Keys: Keys{w.KeyID: pub}, Now: func() time.Time { return time.Unix(w.Timestamp, 0) }}
		if _, _, err := v.Verify(r); err != nil {
			t.Errorf("vector %q does not verify: %v", w.Name, err)
		}
	}
}

func TestSignedMessage(t *testing.T) {
	got := string(SignedMessage("GET", "/v1/runs/x", "12", nil))
	want := "GET\n/v1/runs/x\n12\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	if got != want {
		t.Errorf("SignedMessage(GET, /v1/runs/x, 12, empty) = %q; want %q", got, want)
	}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	v := testVerifier()
	for _, body := range []string{"", "{}", `{"id":"a","trigger":"b"}`, strings.Repeat("x", DefaultMaxBody)} {
		for _, path := range []string{"/v1/triggers", "/v1/runs/abc", "/v1/runs/a%20b"} {
			r := signedRequest(testPriv, testKeyID, "POST", path, []byte(body), testNow)
			got, key, err := v.Verify(r)
			if err != nil {
				t.Fatalf("Verify(signed %s, %d bytes) = %v", path, len(body), err)
			}
			if key != testKeyID || string(got) != body {
				t.Errorf("Verify(signed %s) = %d bytes, key %q; want %d bytes, key %q", path, len(got), key, len(body), testKeyID)
			}
		}
	}
	// Verify consumed the body.
	r := signedRequest(testPriv, testKeyID, "POST", "/v1/triggers", []byte("{}"), testNow)
	if _, _, err := v.Verify(r); err != nil {
		t.Fatal(err)
	}
	if rest, _ := io.ReadAll(r.Body); len(rest) != 0 {
		t.Errorf("body after Verify has %d bytes; want 0", len(rest))
	}
}
