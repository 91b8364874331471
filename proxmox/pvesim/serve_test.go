package pvesim

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

func TestServeInfo(t *testing.T) {
	sim := New()
	srv, err := sim.Start("")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if !strings.HasPrefix(srv.Endpoint, "https://127.0.0.1:") || srv.Node != DefaultNode {
		t.Errorf("Info = %+v", srv.Info)
	}
	tok, err := proxmox.ParseToken(srv.Token)
	if err != nil || tok.ID != DefaultTokenID || tok.Secret.Reveal() != DefaultTokenSecret {
		t.Errorf("Token %q parses as %v, %v", srv.Token, tok, err)
	}
	cfg, err := srv.ClientConfig()
	if err != nil || cfg.Endpoint != srv.Endpoint || cfg.Node != srv.Node || cfg.Token.ID != DefaultTokenID || cfg.Fingerprint != srv.Fingerprint {
		t.Errorf("ClientConfig = %+v, %v; want the endpoint, node, token and pin of %+v", cfg, err, srv.Info)
	}
	if c, err := proxmox.New(cfg); err != nil {
		t.Errorf("a client of ClientConfig: %v", err)
	} else if _, err := c.Version(t.Context()); err != nil {
		t.Errorf("a client of ClientConfig cannot reach the server: %v", err)
	}
	block, _ := pem.Decode(srv.CAPEM)
	if block == nil {
		t.Fatal("CAPEM is not PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.Raw)
	if fp := proxmox.FormatFingerprint(sum[:]); fp != srv.Fingerprint {
		t.Errorf("Fingerprint %s; the certificate's is %s", srv.Fingerprint, fp)
	}
	if _, err := proxmox.ParseFingerprint(srv.Fingerprint); err != nil {
		t.Errorf("Fingerprint does not parse: %v", err)
	}
	if err := cert.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("certificate: %v", err)
	}
	if err := cert.VerifyHostname("localhost"); err != nil {
		t.Errorf("certificate: %v", err)
	}

	// Only HTTP/1.1: reason phrases do not survive HTTP/2.
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}, ForceAttemptHTTP2: true}
	resp, err := (&http.Client{Transport: tr}).Get(srv.Endpoint + "/api2/json/version")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 1 || resp.StatusCode != 401 || resp.Status != "401 No ticket" {
		t.Errorf("response %s %s; want HTTP/1.1 401 No ticket", resp.Proto, resp.Status)
	}

	// An untrusting client is refused by TLS.
	if _, err := http.Get(srv.Endpoint + "/api2/json/version"); err == nil {
		t.Error("a client without the CA reached the server")
	}
	if err := srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestHTTPTestServer(t *testing.T) {
	// The handler also works behind httptest, the other way tests serve it.
	sim := New()
	ts := httptest.NewTLSServer(sim)
	defer ts.Close()
	req, _ := http.NewRequest("POST", ts.URL+"/api2/json/nodes/demo-felhom/lxc/101/status/start", nil)
	req.Header.Set("Authorization", "PVEAPIToken="+DefaultTokenID+"="+DefaultTokenSecret)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Status != "500 CT 101 already running" {
		t.Errorf("status = %q; want PVE's reason phrase", resp.Status)
	}
}

// TestConcurrentRequests hammers one Sim from many goroutines; run with
// -race it checks the locking.
func TestConcurrentRequests(t *testing.T) {
	h := newHarness(t)
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 6; j++ {
				var r *result
				switch (i + j) % 6 {
				case 0:
					r = h.do("GET", nodePath+"/lxc", nil)
				case 1:
					r = h.do("PUT", nodePath+"/lxc/102/config", vals("description", "writer"))
				case 2:
					r = h.do("POST", nodePath+"/vzdump", vals("vmid", "9999", "storage", "usb-backup"))
				case 3:
					r = h.do("GET", "/cluster/resources", nil)
				case 4:
					r = h.do("GET", nodePath+"/tasks", vals("source", "all"))
				case 5:
					h.clock.Advance(testTaskDuration)
					_ = h.sim.Volumes("usb-backup")
					r = h.do("GET", nodePath+"/storage/usb-backup/content", nil)
				}
				// A config write may meet the backup lock; that is a PVE answer too.
				if r.status != 200 && r.reason != "CT is locked (backup)" {
					errs <- r.reason
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("concurrent request failed: %s", e)
	}
	if h.sim.Requests() != 48 {
		t.Errorf("Requests() = %d; want 48", h.sim.Requests())
	}
}
