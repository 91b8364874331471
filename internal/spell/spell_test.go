package spell

import "testing"

func TestNearest(t *testing.T) {
	tests := []struct {
		x          string
		candidates []string
		want       string
	}{
		{"guets", []string{"guest", "guests", "config"}, "guests"},
		{"storge", []string{"vmid", "storage", "mode"}, "storage"},
		{"hostname", []string{"vmid", "name", "status"}, ""}, // four edits of eight letters: too far
		{"hostnme", []string{"vmid", "hostname"}, "hostname"},
		{"Keep_Last", []string{"keep_last", "keep_daily"}, "keep_last"},
		{"mesage", []string{"type", "vmid", "message", "always"}, "message"},
		{"frobnicate", []string{"guests", "config"}, ""},
		{"x", nil, ""},
	}
	for _, tt := range tests {
		if got := Nearest(tt.x, tt.candidates); got != tt.want {
			t.Errorf("Nearest(%q, %q) = %q; want %q", tt.x, tt.candidates, got, tt.want)
		}
	}
}

func TestDistance(t *testing.T) {
	for _, tt := range []struct {
		x, y string
		want int
	}{{"", "", 0}, {"a", "", 1}, {"kitten", "sitting", 3}, {"abc", "abc", 0}, {"abc", "acb", 2}} {
		if got := distance(tt.x, tt.y, 10); got != tt.want {
			t.Errorf("distance(%q, %q) = %d; want %d", tt.x, tt.y, got, tt.want)
		}
	}
}
