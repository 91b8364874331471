package channel_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/hub/channel"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/hub/hubsim"
)

const secretKey = "s3cret-host-key-do-not-print"

func startSim(t *testing.T) (*hubsim.Sim, *hubsim.Server) {
	t.Helper()
	sim := hubsim.New()
	sim.AddHost("host-a", secretKey)
	sim.AddHost("host-b", "other-key")
	sim.OnUnmodeled = func(r *http.Request) { t.Errorf("unmodeled request %s %s", r.Method, r.URL.Path) }
	srv, err := sim.Start("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return sim, srv
}

func newClient(t *testing.T, srv *hubsim.Server, key string, trust proxmox.TLSTrust) *channel.Client {
	t.Helper()
	c, err := channel.NewClient(channel.Config{URL: srv.URL, HostID: "host-a", APIKey: channel.APIKey(key), TLS: trust})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClientReportAndDesiredState(t *testing.T) {
	sim, srv := startSim(t)
	c := newClient(t, srv, secretKey, proxmox.TLSTrust{Fingerprint: srv.Fingerprint})
	ctx := context.Background()

	if err := sim.SetEnvelope("host-a", 120, false); err != nil {
		t.Fatal(err)
	}
	env, err := c.Report(ctx, []byte(`{"host_id": "host-a", "agent_version": "test"}`))
	if err != nil {
		t.Fatal(err)
	}
	if env.PollInterval.Seconds() != 120 || env.DesiredGeneration != 0 || env.Blocked {
		t.Errorf("envelope = %+v", env)
	}
	if n := len(sim.Reports("host-a")); n != 1 {
		t.Errorf("the hub has %d reports; want 1", n)
	}

	gen, err := sim.SetDesired("host-a", []byte(`{"schema": 1, "guests": []}`))
	if err != nil {
		t.Fatal(err)
	}
	fs, err := c.DesiredState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fs.Generation != gen || string(fs.Raw) != `{"schema":1,"guests":[]}` {
		t.Errorf("DesiredState = %d %s; want %d", fs.Generation, fs.Raw, gen)
	}
}

func TestClientRefusals(t *testing.T) {
	sim, srv := startSim(t)
	ctx := context.Background()
	pinned := proxmox.TLSTrust{Fingerprint: srv.Fingerprint}

	t.Run("wrong key", func(t *testing.T) {
		_, err := newClient(t, srv, "wrong-key", pinned).Report(ctx, []byte(`{"host_id": "host-a"}`))
		if he, ok := errors.AsType[*channel.HTTPError](err); !ok || he.Status != 401 || !he.Permanent() {
			t.Fatalf("Report with a wrong key = %v; want HTTP 401", err)
		}
	})
	t.Run("another host's id", func(t *testing.T) {
		_, err := newClient(t, srv, secretKey, pinned).Report(ctx, []byte(`{"host_id": "host-b"}`))
		if he, ok := errors.AsType[*channel.HTTPError](err); !ok || he.Status != 403 {
			t.Fatalf("Report for another host = %v; want HTTP 403", err)
		}
	})
	t.Run("wrong pin", func(t *testing.T) {
		other := strings.Repeat("AB:", 31) + "AB"
		_, err := newClient(t, srv, secretKey, proxmox.TLSTrust{Fingerprint: other}).Report(ctx, []byte(`{}`))
		if _, ok := errors.AsType[*proxmox.FingerprintError](err); !ok || !proxmox.IsTrustError(err) {
			t.Fatalf("Report to a hub with another certificate = %v; want a FingerprintError", err)
		}
	})
	t.Run("system roots refuse a self-signed hub", func(t *testing.T) {
		_, err := newClient(t, srv, secretKey, proxmox.TLSTrust{}).Report(ctx, []byte(`{}`))
		if !proxmox.IsTrustError(err) {
			t.Fatalf("Report = %v; want a trust error", err)
		}
	})
	t.Run("too large for the hub", func(t *testing.T) {
		sim.MaxReportBytes = 100
		defer func() { sim.MaxReportBytes = 0 }()
		body := fmt.Appendf(nil, `{"host_id": "host-a", "pad": %q}`, strings.Repeat("x", 200))
		_, err := newClient(t, srv, secretKey, pinned).Report(ctx, body)
		if he, ok := errors.AsType[*channel.HTTPError](err); !ok || he.Status != 413 {
			t.Fatalf("Report over the hub's limit = %v; want 413", err)
		}
	})
	t.Run("over the agent's own limit", func(t *testing.T) {
		_, err := newClient(t, srv, secretKey, pinned).Report(ctx, make([]byte, channel.MaxReportBytes+1))
		if err == nil || !strings.Contains(err.Error(), "over the hub's limit") {
			t.Fatalf("Report of 4 MiB + 1 = %v; want refused before sending", err)
		}
	})
	for _, m := range []string{"envelope", "envelope_types", "huge"} {
		t.Run("malformed "+m, func(t *testing.T) {
			sim.SetFaults(hubsim.Faults{Malformed: m})
			defer sim.SetFaults(hubsim.Faults{})
			_, err := newClient(t, srv, secretKey, pinned).Report(ctx, []byte(`{"host_id": "host-a"}`))
			if err == nil {
				t.Fatal("a malformed envelope was accepted")
			}
		})
	}
	t.Run("down", func(t *testing.T) {
		sim.SetFaults(hubsim.Faults{Down: true})
		defer sim.SetFaults(hubsim.Faults{})
		_, err := newClient(t, srv, secretKey, pinned).Report(ctx, []byte(`{"host_id": "host-a"}`))
		if _, ok := errors.AsType[*channel.TransportError](err); !ok {
			t.Fatalf("Report to a down hub = %v; want a TransportError", err)
		}
	})
	t.Run("5xx", func(t *testing.T) {
		sim.SetFaults(hubsim.Faults{FailNext: 1, FailStatus: 502})
		_, err := newClient(t, srv, secretKey, pinned).Report(ctx, []byte(`{"host_id": "host-a"}`))
		if he, ok := errors.AsType[*channel.HTTPError](err); !ok || he.Status != 502 || he.Permanent() {
			t.Fatalf("Report = %v; want a transient 502", err)
		}
	})
}

func TestAPIKeyRedacted(t *testing.T) {
	k := channel.APIKey(secretKey)
	cfg := channel.Config{URL: "ftp://x", HostID: "", APIKey: k}
	for _, s := range []string{
		fmt.Sprint(k), fmt.Sprintf("%v %s %q %x %#v %+v", k, k, k, k, k, cfg), fmt.Sprintf("%#v", cfg),
		cfg.Validate().Error(),
	} {
		if strings.Contains(s, secretKey) {
			t.Errorf("the key leaks: %s", s)
		}
	}
	if k.Reveal() != secretKey {
		t.Error("Reveal lost the key")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		cfg  channel.Config
		want string
	}{
		{channel.Config{}, "hub.url: is required"},
		{channel.Config{URL: "http://hub.example", HostID: "h", APIKey: "k"}, "hub.url: must be https"},
		{channel.Config{URL: "https://u:p@hub.example", HostID: "h", APIKey: "k"}, "without credentials"},
		{channel.Config{URL: "https://hub.example", HostID: "../x", APIKey: "k"}, "hub.host_id:"},
		{channel.Config{URL: "https://hub.example", HostID: "h", APIKey: "a b"}, "hub.api_key:"},
		{channel.Config{URL: "https://hub.example", HostID: "h", APIKey: "k", TLS: proxmox.TLSTrust{Fingerprint: "zz"}}, "hub.fingerprint:"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate(%+v) = %v; want %q", tt.cfg, err, tt.want)
		}
	}
	if err := (channel.Config{URL: "http://127.0.0.1:1", HostID: "h", APIKey: "k"}).Validate(); err != nil {
		t.Errorf("a loopback http hub is refused: %v", err)
	}
}
