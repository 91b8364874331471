package proxmox

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func validConfig() Config {
	return Config{
		Endpoint: "https://pve1.lan:8006",
		Node:     "pve1",
		Token:    Token{ID: "felhom-agent@pve!agent", Secret: "5ec2e7a1-d00d-4bad-beef-0123456789ab"},
	}
}

func TestConfigValidate(t *testing.T) {
	pin := strings.Repeat("AB:", 31) + "AB"
	tests := []struct {
		name string
		mod  func(*Config)
		want []string // keys the error must name; none when valid
	}{
		{name: "minimal", mod: func(*Config) {}},
		{name: "with pin", mod: func(c *Config) { c.Fingerprint = pin }},
		{name: "with CA file and timeout", mod: func(c *Config) { c.CAFile = "/etc/pve/pve-root-ca.pem"; c.Timeout = time.Minute }},
		{name: "endpoint with path", mod: func(c *Config) { c.Endpoint = "https://pve1.lan:8006/api2/json" }},
		{name: "no endpoint", mod: func(c *Config) { c.Endpoint = "" }, want: []string{"proxmox.endpoint"}},
		{name: "http endpoint", mod: func(c *Config) { c.Endpoint = "http://pve1.lan:8006" }, want: []string{"proxmox.endpoint", "https"}},
		{name: "endpoint without host", mod: func(c *Config) { c.Endpoint = "https:///x" }, want: []string{"proxmox.endpoint", "no host"}},
		{name: "endpoint not a URL", mod: func(c *Config) { c.Endpoint = "https://pve1.lan:80 06" }, want: []string{"proxmox.endpoint"}},
		{name: "no node", mod: func(c *Config) { c.Node = "" }, want: []string{"proxmox.node"}},
		{name: "no token", mod: func(c *Config) { c.Token = Token{} }, want: []string{"proxmox.token", "required"}},
		{name: "token without secret", mod: func(c *Config) { c.Token.Secret = "" }, want: []string{"proxmox.token"}},
		{name: "token id malformed", mod: func(c *Config) { c.Token.ID = "root@pam" }, want: []string{"proxmox.token"}},
		{name: "bad pin", mod: func(c *Config) { c.Fingerprint = "AB:CD" }, want: []string{"proxmox.fingerprint"}},
		{name: "insecure with pin", mod: func(c *Config) { c.Fingerprint = pin; c.InsecureSkipVerify = true }, want: []string{"proxmox.insecure_skip_verify"}},
		{name: "insecure with CA", mod: func(c *Config) { c.CAFile = "/x.pem"; c.InsecureSkipVerify = true }, want: []string{"proxmox.insecure_skip_verify"}},
		{name: "negative timeout", mod: func(c *Config) { c.Timeout = -time.Second }, want: []string{"proxmox.timeout"}},
		{name: "everything wrong at once", mod: func(c *Config) { *c = Config{Timeout: -1} },
			want: []string{"proxmox.endpoint", "proxmox.node", "proxmox.token", "proxmox.timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mod(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Errorf("Validate() = %v; want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil; want an error naming %v", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q; want it to mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), string(validConfig().Token.Secret)) {
				t.Errorf("Validate() shows the secret: %v", err)
			}
		})
	}
}

func TestFingerprint(t *testing.T) {
	sum := bytes.Repeat([]byte{0xab}, 32)
	sum[0] = 0x01
	formatted := FormatFingerprint(sum)
	if !strings.HasPrefix(formatted, "01:AB:AB") || len(formatted) != 32*3-1 {
		t.Errorf("FormatFingerprint = %q", formatted)
	}
	for _, in := range []string{formatted, strings.ToLower(formatted), strings.ReplaceAll(formatted, ":", ""), " " + formatted + "\n"} {
		got, err := ParseFingerprint(in)
		if err != nil || !bytes.Equal(got, sum) {
			t.Errorf("ParseFingerprint(%q) = %x, %v; want %x", in, got, err, sum)
		}
	}
	for _, in := range []string{"", "AB:CD", formatted + ":00", strings.Replace(formatted, "AB", "ZZ", 1)} {
		if _, err := ParseFingerprint(in); err == nil || !strings.Contains(err.Error(), "SHA-256") {
			t.Errorf("ParseFingerprint(%q) error = %v; want a SHA-256 format error", in, err)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	tests := []struct {
		timeout     time.Duration
		retries     int
		wantTimeout time.Duration
		wantRetries int
	}{
		{0, 0, 30 * time.Second, -1},
		{5 * time.Second, 1, 5 * time.Second, 1},
		{time.Minute, -1, time.Minute, 0},
		{time.Minute, 10, time.Minute, 10},
	}
	for _, tt := range tests {
		c := Config{Timeout: tt.timeout, ReadRetries: tt.retries}
		if got := c.timeout(); got != tt.wantTimeout {
			t.Errorf("timeout() with %v = %v; want %v", tt.timeout, got, tt.wantTimeout)
		}
		if got := c.readRetries(); got != tt.wantRetries {
			t.Errorf("readRetries() with %d = %d; want %d", tt.retries, got, tt.wantRetries)
		}
	}
}
