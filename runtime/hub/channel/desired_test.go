package channel

import (
	"strings"
	"testing"
)

var desiredTests = []struct {
	name, doc string
	wantErr   []string // substrings; none means valid
}{
	{"minimal", `{"schema": 1, "guests": []}`, nil},
	{"one guest with defaults", `{"schema": 1, "guests": [{"vmid": 120, "hostname": "shop"}]}`, nil},
	{"full guest", `{"schema": 1, "golden_vmid": 9001, "storage": "local-zfs", "archive_storage": "usb-backup",
		"guests": [{"vmid": 120, "kind": "lxc", "hostname": "shop", "cores": 2, "memory": 1024,
		"net": "name=eth0,bridge=vmbr0,ip=dhcp", "description": "the shop", "power": "stopped"}]}`, nil},
	{"null", `null`, []string{"desired_state: is missing"}},
	{"not an object", `[1]`, []string{"must be a JSON object"}},
	{"wrong schema", `{"schema": 2, "guests": []}`, []string{"schema: is 2; this agent reads schema 1"}},
	{"no schema", `{"guests": []}`, []string{"schema: is 0"}},
	{"guests missing", `{"schema": 1}`, []string{"guests: is missing"}},
	{"unknown field", `{"schema": 1, "guests": [], "gusts": []}`, []string{`unknown field "gusts"`}},
	{"wrong type", `{"schema": 1, "guests": [{"vmid": "120", "hostname": "a"}]}`, []string{"got a JSON string, want an integer"}},
	{"trailing", `{"schema": 1, "guests": []} {}`, []string{"trailing data"}},
	{"every guest problem named", `{"schema": 1, "guests": [
		{"vmid": 5, "hostname": "bad_name", "cores": 0, "memory": 1, "net": "bridge", "power": "on", "kind": "qemu"},
		{"hostname": ""}]}`,
		[]string{"guests[0].vmid: 5 is not in 100..999999999", "guests[0].hostname: is not a DNS label",
			"guests[0].memory: 1 MiB", "guests[0].net:", "guests[0].power:", "guests[0].kind:",
			"guests[1].vmid: is required", "guests[1].hostname: is required"}},
	{"duplicate vmid", `{"schema": 1, "guests": [{"vmid": 120, "hostname": "a"}, {"vmid": 120, "hostname": "b"}]}`,
		[]string{"guests[1].vmid: 120 is also guests[0]"}},
	{"golden vmid", `{"schema": 1, "guests": [{"vmid": 9000, "hostname": "a"}]}`, []string{"is the golden guest"}},
	{"net without bridge", `{"schema": 1, "guests": [{"vmid": 120, "hostname": "a", "net": "name=eth0,ip=dhcp"}]}`,
		[]string{"must name name= and bridge="}},
	{"net injection", `{"schema": 1, "guests": [{"vmid": 120, "hostname": "a", "net": "name=eth0,bridge=vmbr0\nfoo=bar"}]}`,
		[]string{"is not a comma-separated list"}},
	{"bad storage", `{"schema": 1, "storage": "../etc", "guests": []}`, []string{"storage: is not a storage id"}},
	{"customer and retrieval password", `{"schema": 1, "guests": [{"vmid": 120, "hostname": "a", "customer_id": "cust-42", "retrieval_password": "correct horse"}]}`, nil},
	{"bad customer id", `{"schema": 1, "guests": [{"vmid": 120, "hostname": "a", "customer_id": "../x"}]}`,
		[]string{"guests[0].customer_id: is not a customer id"}},
	{"password without customer", `{"schema": 1, "guests": [{"vmid": 120, "hostname": "a", "retrieval_password": "s3cr3t-pw"}]}`,
		[]string{"guests[0].retrieval_password: needs customer_id"}},
	{"password with a newline", `{"schema": 1, "guests": [{"vmid": 120, "hostname": "a", "customer_id": "c", "retrieval_password": "s3cr3t\npw"}]}`,
		[]string{"guests[0].retrieval_password: must be UTF-8 text without control characters"}},
	{"password too long", `{"schema": 1, "guests": [{"vmid": 120, "hostname": "a", "customer_id": "c", "retrieval_password": "` + strings.Repeat("s3cr3t", 50) + `"}]}`,
		[]string{"guests[0].retrieval_password: is 300 bytes, over the limit of 256"}},
}

func TestParseDesiredState(t *testing.T) {
	for _, tt := range desiredTests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseDesiredState([]byte(tt.doc))
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("ParseDesiredState = %v; want no error", err)
				}
				for _, g := range d.Guests {
					if g.Kind == "" || g.Cores == 0 || g.Memory == 0 || g.Net == "" || g.Power == "" {
						t.Errorf("guest %d not normalized: %+v", g.VMID, g)
					}
				}
				if _, err := ParseDesiredState(d.JSON()); err != nil {
					t.Errorf("the normalized form does not parse again: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseDesiredState = nil error; want %q", tt.wantErr)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("the error %q quotes the retrieval password", err)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ParseDesiredState error = %q; want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestDesiredDefaults(t *testing.T) {
	d, err := ParseDesiredState([]byte(`{"schema": 1, "guests": [{"vmid": 120, "hostname": "shop"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	g := d.Guests[0]
	if d.GoldenVMID != DefaultGoldenVMID || d.Storage != DefaultGuestStorage || g.Kind != KindLXC ||
		g.Cores != 1 || g.Memory != 512 || g.Net != DefaultGuestNet || g.Power != PowerRunning {
		t.Errorf("defaults = %+v %+v", d, g)
	}
}

// Playbooks read the desired state without any retrieval password; the
// agent keeps it (JSON) and finds it per guest.
func TestDesiredPlaybookJSONHasNoPassword(t *testing.T) {
	d, err := ParseDesiredState([]byte(`{"schema": 1, "guests": [{"vmid": 120, "hostname": "a", "customer_id": "cust-42", "retrieval_password": "s3cr3t-pw"}, {"vmid": 121, "hostname": "b"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if pj := string(d.PlaybookJSON()); strings.Contains(pj, "s3cr3t") || strings.Contains(pj, "retrieval_password") || !strings.Contains(pj, `"customer_id":"cust-42"`) {
		t.Errorf("PlaybookJSON = %s; want the customer and no password", pj)
	}
	if !strings.Contains(string(d.JSON()), "s3cr3t-pw") {
		t.Error("JSON lost the password the agent must keep")
	}
	if g := d.Guest(120); g == nil || g.RetrievalPassword != "s3cr3t-pw" || g.CustomerID != "cust-42" {
		t.Errorf("Guest(120) = %+v; the password was cleared in place", g)
	}
	if d.Guest(122) != nil {
		t.Error("Guest(122) found a guest the state does not list")
	}
}

func FuzzParseDesiredState(f *testing.F) {
	for _, tt := range desiredTests {
		f.Add([]byte(tt.doc))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDesiredState(b)
		if err != nil {
			return
		}
		// What validates once validates again, unchanged.
		d2, err := ParseDesiredState(d.JSON())
		if err != nil {
			t.Fatalf("normalized form refused: %v", err)
		}
		if string(d2.JSON()) != string(d.JSON()) {
			t.Fatalf("normalization is not idempotent")
		}
	})
}

var envelopeTests = []struct {
	name, body string
	want       Envelope
	wantErr    string
}{
	{"full", `{"poll_interval_seconds": 120, "blocked": true, "desired_generation": 7, "has_signed_ops": true}`,
		Envelope{PollInterval: 120e9, Blocked: true, DesiredGeneration: 7, HasSignedOps: true}, ""},
	{"empty object", `{}`, Envelope{}, ""},
	{"unknown fields ignored", `{"poll_interval_seconds": 60, "motd": "hi"}`, Envelope{PollInterval: 60e9}, ""},
	{"string interval", `{"poll_interval_seconds": "soon"}`, Envelope{}, "poll_interval_seconds"},
	{"fraction", `{"poll_interval_seconds": 1.5}`, Envelope{}, "is not an integer"},
	{"negative generation", `{"desired_generation": -1}`, Envelope{}, "out of range"},
	{"blocked string", `{"blocked": "yes"}`, Envelope{}, "want a boolean"},
	{"not JSON", `{"poll_interval_seconds": 60,`, Envelope{}, "envelope:"},
	{"trailing", `{} x`, Envelope{}, "envelope:"},
	{"array", `[]`, Envelope{}, "envelope:"},
}

func TestParseEnvelope(t *testing.T) {
	for _, tt := range envelopeTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEnvelope([]byte(tt.body))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseEnvelope(%s) error = %v; want %q", tt.body, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseEnvelope(%s) = %+v, %v; want %+v", tt.body, got, err, tt.want)
			}
		})
	}
}

func FuzzParseEnvelope(f *testing.F) {
	for _, tt := range envelopeTests {
		f.Add([]byte(tt.body))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEnvelope(b)
		if err == nil && (e.PollInterval < 0 || e.DesiredGeneration < 0) {
			t.Fatalf("accepted a negative value: %+v", e)
		}
	})
}
