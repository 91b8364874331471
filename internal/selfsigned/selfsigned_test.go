package selfsigned

import (
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCertificate(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	cert, der, err := Certificate(now, pkix.Name{CommonName: "node.local"}, "node")
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject.CommonName != "node.local" || !slices.Equal(c.DNSNames, []string{"localhost", "node"}) || !c.IsCA {
		t.Errorf("certificate = %s %v CA %v; want node.local for localhost and node, a CA", c.Subject.CommonName, c.DNSNames, c.IsCA)
	}
	if !c.NotBefore.Before(now) || !c.NotAfter.After(now.Add(365*24*time.Hour)) {
		t.Errorf("valid %v..%v; want from before %v for over a year", c.NotBefore, c.NotAfter, now)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c)
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost", CurrentTime: now}); err != nil {
		t.Errorf("the certificate does not verify as its own CA: %v", err)
	}
	if len(cert.Certificate) != 1 || cert.PrivateKey == nil {
		t.Error("tls.Certificate lacks its chain or key")
	}
}

func TestServe(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(418)
	})
	sv, err := Serve("", h, pkix.Name{CommonName: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sv.URL, "https://127.0.0.1:") {
		t.Errorf("URL = %q; want a loopback https URL", sv.URL)
	}
	block, _ := pem.Decode(sv.CAPEM)
	if block == nil || sha256.Sum256(block.Bytes) != sv.SHA256 {
		t.Fatal("CAPEM is not the certificate SHA256 names")
	}
	// HTTP/1.1 even for a client that asks for HTTP/2.
	tr := sv.Client().Transport.(*http.Transport).Clone()
	tr.ForceAttemptHTTP2 = true
	resp, err := (&http.Client{Transport: tr}).Get(sv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 1 || resp.StatusCode != 418 {
		t.Errorf("response %s %s; want HTTP/1.1 418", resp.Proto, resp.Status)
	}
	if _, err := http.Get(sv.URL); err == nil {
		t.Error("a client that does not trust the certificate reached the server")
	}
	if err := sv.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if _, err := sv.Client().Get(sv.URL); err == nil {
		t.Error("the server answers after Close")
	}
	if _, err := Serve("256.0.0.1:0", h, pkix.Name{}); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Errorf("Serve on a bad address = %v; want a listen error", err)
	}
}
