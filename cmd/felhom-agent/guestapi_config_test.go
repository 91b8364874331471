package main

import (
	"strings"
	"testing"
)

func TestGuestAPIConfig(t *testing.T) {
	ok := func(listen []string, endpoint string) *ServeCmd {
		return &ServeCmd{GuestAPIListen: listen, GuestAPIEndpoint: endpoint, GuestAPIRate: 5, GuestAPIBurst: 20, StateDir: t.TempDir()}
	}
	cfg, err := ok([]string{`["10.0.0.1:8443","10.0.1.1:8443"]`}, "").guestAPIConfig(&backend{}, nil)
	if err != nil || strings.Join(cfg.Listen, " ") != "10.0.0.1:8443 10.0.1.1:8443" || cfg.Attach != nil {
		t.Fatalf("a list from the file = %+v, %v", cfg, err)
	}
	if cfg, err := ok([]string{"10.0.0.1:8443, 10.0.1.1:8443"}, "").guestAPIConfig(&backend{}, nil); err != nil || len(cfg.Listen) != 2 {
		t.Errorf("comma-separated = %+v, %v", cfg, err)
	}
	if cfg, err := ok(nil, "").guestAPIConfig(&backend{}, nil); cfg != nil || err != nil {
		t.Errorf("empty = %+v, %v; want no guest API", cfg, err)
	}
	for _, c := range []struct {
		cmd  *ServeCmd
		want string
	}{
		{ok([]string{"10.0.0.1"}, ""), `guest_api.listen: "10.0.0.1": want host:port`},
		{ok(nil, "10.0.0.1:8443"), "guest_api.endpoint: is set but guest_api.listen is empty"},
		{ok([]string{"10.0.0.1:8443"}, "nope"), `guest_api.endpoint: "nope": want host:port`},
		{&ServeCmd{GuestAPIListen: []string{"10.0.0.1:8443"}, GuestAPIRate: 0, GuestAPIBurst: 20}, "guest_api.rate 0, guest_api.burst 20: want both above zero"},
	} {
		if _, err := c.cmd.guestAPIConfig(&backend{}, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v; want %q", c.cmd.GuestAPIListen, err, c.want)
		}
	}
}
