package runstate

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestTable(t *testing.T) {
	seen := map[Status]bool{}
	live := true
	for _, in := range All() {
		if seen[in.Status] {
			t.Errorf("%s appears twice in the table", in.Status)
		}
		seen[in.Status] = true
		if !in.Final && !live {
			t.Errorf("%s is live but follows a final status; live statuses come first", in.Status)
		}
		live = live && !in.Final
		if in.Meaning == "" {
			t.Errorf("%s has no meaning", in.Status)
		}
	}
	tests := []struct {
		s               Status
		valid, terminal bool
	}{
		{Queued, true, false}, {Running, true, false}, {PendingSignature, true, false},
		{Succeeded, true, true}, {Failed, true, true}, {Cancelled, true, true},
		{Refused, true, true}, {TimedOut, true, true}, {Interrupted, true, false},
		{"", false, false}, {"done", false, false}, {"Succeeded", false, false},
	}
	for _, tt := range tests {
		if got := tt.s.Valid(); got != tt.valid {
			t.Errorf("%q.Valid() = %v; want %v", tt.s, got, tt.valid)
		}
		if got := tt.s.Terminal(); got != tt.terminal {
			t.Errorf("%q.Terminal() = %v; want %v", tt.s, got, tt.terminal)
		}
		if tt.valid && !seen[tt.s] {
			t.Errorf("%s is missing from the table", tt.s)
		}
	}
	if n := strings.Count(Names(), ", ") + 1; n != len(All()) {
		t.Errorf("Names() = %q lists %d statuses; want %d", Names(), n, len(All()))
	}
}

func TestNewID(t *testing.T) {
	at := time.Date(2026, 12, 1, 3, 0, 2, 0, time.FixedZone("CET", 3600))
	id := NewID(at)
	if !regexp.MustCompile(`^r-20261201T020002-[0-9a-f]{8}$`).MatchString(id) {
		t.Errorf("NewID(%v) = %q; want r-20261201T020002-<8 hex digits> (UTC)", at, id)
	}
	if NewID(at) == id {
		t.Errorf("two NewID calls at one instant gave %q twice", id)
	}
}
