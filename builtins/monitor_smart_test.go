package builtins

import (
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

var smartTextTests = []struct {
	name, text    string
	temp, realloc int64
}{
	{"nvme", "SMART/Health Information (NVMe Log 0x02)\nCritical Warning:                   0x00\nTemperature:                        41 Celsius\nMedia and Data Integrity Errors:    3\n", 41, 3},
	{"sas", "Current Drive Temperature:     30 C\nDrive Trip Temperature:        65 C\nElements in grown defect list: 1,024\n", 30, 1024},
	{"empty", "", 0, 0},
	{"no values", "Temperature:\nMedia and Data Integrity Errors: n/a\n", 0, 0},
	{"windows newlines", "Temperature: 38 Celsius\r\n", 38, 0},
	{"overflow", "Temperature: 99999999999999999999999 Celsius\n", 0, 0},
}

func TestSmartText(t *testing.T) {
	for _, tt := range smartTextTests {
		temp, realloc := smartText(tt.text)
		if int64(temp) != tt.temp || realloc != tt.realloc {
			t.Errorf("%s: smartText = %d, %d; want %d, %d", tt.name, temp, realloc, tt.temp, tt.realloc)
		}
	}
}

func FuzzSmartText(f *testing.F) {
	for _, tt := range smartTextTests {
		f.Add(tt.text)
	}
	f.Fuzz(func(t *testing.T, text string) {
		temp, realloc := smartText(text) // must not panic
		if temp < 0 || realloc < 0 {
			t.Errorf("smartText(%q) = %d, %d; want no negative values", text, temp, realloc)
		}
	})
}

var smartATATests = []struct {
	name          string
	attrs         []proxmox.SMARTAttribute
	temp, realloc int64
}{
	{"194 and 5", []proxmox.SMARTAttribute{{ID: 5, Raw: "8"}, {ID: 194, Raw: "34 (Min/Max 20/49)"}}, 34, 8},
	{"190 fallback", []proxmox.SMARTAttribute{{ID: 190, Raw: "39"}}, 39, 0},
	{"194 wins over 190", []proxmox.SMARTAttribute{{ID: 194, Raw: "30"}, {ID: 190, Raw: "39"}}, 30, 0},
	{"by name", []proxmox.SMARTAttribute{{ID: 231, Name: "Temperature_Celsius", Raw: "28"}}, 28, 0},
	{"garbage raw", []proxmox.SMARTAttribute{{ID: 5, Raw: "n/a"}, {ID: 194, Raw: ""}}, 0, 0},
	{"none", nil, 0, 0},
}

func TestSmartATA(t *testing.T) {
	for _, tt := range smartATATests {
		temp, realloc := smartATA(tt.attrs)
		if int64(temp) != tt.temp || realloc != tt.realloc {
			t.Errorf("%s: smartATA = %d, %d; want %d, %d", tt.name, temp, realloc, tt.temp, tt.realloc)
		}
	}
}

var leadingIntTests = []struct {
	in   string
	want int64
	ok   bool
}{
	{"34", 34, true},
	{" 34 (Min/Max 20/49)", 34, true},
	{"0", 0, true},
	{"", 0, false},
	{"n/a", 0, false},
	{"-5", 0, false},
	{"9223372036854775808", 0, false},
}

func TestLeadingInt(t *testing.T) {
	for _, tt := range leadingIntTests {
		if got, ok := leadingInt(tt.in); got != tt.want || ok != tt.ok {
			t.Errorf("leadingInt(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func FuzzLeadingInt(f *testing.F) {
	for _, tt := range leadingIntTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, ok := leadingInt(s); n < 0 || !ok && n != 0 {
			t.Errorf("leadingInt(%q) = %d, %v", s, n, ok)
		}
	})
}
