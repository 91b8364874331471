package selfsigned

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"slices"
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
