package schedule

import (
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // tests must not depend on the machine's zoneinfo
)

var parseTests = []struct {
	expr, tz string
	cron     string // canonical
	loc      string
}{
	{"0 3 * * *", "UTC", "0 3 * * *", "UTC"},
	{"0 3 * * *", "", "0 3 * * *", "Local"},
	{"0 3 * * *", "Europe/Budapest", "0 3 * * *", "Europe/Budapest"},
	{"TZ=Europe/Budapest 30 2 * * *", "", "30 2 * * *", "Europe/Budapest"},
	{"TZ=Europe/Budapest 30 2 * * *", "America/New_York", "30 2 * * *", "Europe/Budapest"},
	{"CRON_TZ=UTC @daily", "", "0 0 * * *", "UTC"},
	{"  0   3 *  * *  ", "UTC", "0 3 * * *", "UTC"},
	{"@HOURLY", "UTC", "0 * * * *", "UTC"},
	{"@yearly", "UTC", "0 0 1 1 *", "UTC"},
	{"@midnight", "UTC", "0 0 * * *", "UTC"},
	{"*/15 9-17 * * MON-FRI", "UTC", "*/15 9-17 * * 1-5", "UTC"},
	{"0 0 1 jan,Jul *", "UTC", "0 0 1 1,7 *", "UTC"},
	{"05 03 * * *", "UTC", "5 3 * * *", "UTC"},
	{"5/15 * * * *", "UTC", "5/15 * * * *", "UTC"},
	{"0-30/10 * * * *", "UTC", "0-30/10 * * * *", "UTC"},
	{"0 3 L * *", "UTC", "0 3 L * *", "UTC"},
	{"0 3 15W * *", "UTC", "0 3 15W * *", "UTC"},
	{"0 3 ? * 5L", "UTC", "0 3 * * 5L", "UTC"},
	{"0 3 ? * fri#2", "UTC", "0 3 * * 5#2", "UTC"},
	{"0 3 * * 7", "UTC", "0 3 * * 7", "UTC"},
	{"0 0 29 2 *", "UTC", "0 0 29 2 *", "UTC"},
}

var parseErrorTests = []struct {
	expr, tz string
	want     string
}{
	{"", "UTC", `schedule "": has 0 fields, want 5 (minute hour day-of-month month day-of-week) or a macro like @daily`},
	{"* * * * * *", "UTC", `schedule "* * * * * *": has 6 fields, want 5`},
	{"61 * * * *", "UTC", `schedule "61 * * * *": minute field "61": 61 is out of range 0-59`},
	{"* 24 * * *", "UTC", `schedule "* 24 * * *": hour field "24": 24 is out of range 0-23`},
	{"* * 0 * *", "UTC", `day-of-month field "0": 0 is out of range 1-31`},
	{"* * * 13 *", "UTC", `month field "13": 13 is out of range 1-12`},
	{"* * * * 8", "UTC", `day-of-week field "8": 8 is out of range 0-7`},
	{"*/0 * * * *", "UTC", `minute field "*/0": step 0 is out of range 1-59`},
	{"*/x * * * *", "UTC", `minute field "*/x": step "x" is not a number`},
	{"5-1 * * * *", "UTC", `minute field "5-1": range 5-1 is backwards`},
	{"1,,2 * * * *", "UTC", `minute field "1,,2": item "": empty list item`},
	{"1,99 * * * *", "UTC", `minute field "1,99": item "99": 99 is out of range 0-59`},
	{"a * * * *", "UTC", `minute field "a": "a" is not a number`},
	{"+5 * * * *", "UTC", `minute field "+5": "+5" is not a number`},
	{"-5 * * * *", "UTC", `minute field "-5": "" is not a number`},
	{"* * * FOO *", "UTC", `month field "FOO": "FOO" is not a number or a month name`},
	{"* * * * MON-FOO", "UTC", `day-of-week field "MON-FOO": "FOO" is not a number or a day-of-week name`},
	{"0 3 * JAN MON#6", "UTC", `day-of-week field "MON#6": "6" after # is not an occurrence 1-5`},
	{"0 3 LW * *", "UTC", `day-of-month field "LW": "L" is not a number`},
	{"0 3 ? ? ?", "UTC", `month field "?": "?" is not a number or a month name`},
	{"@reboot", "UTC", `schedule "@reboot": unknown macro "@reboot"`},
	{"@daily extra", "UTC", `has 2 fields`},
	{"TZ=Mars/Olympus 0 3 * * *", "", `schedule "TZ=Mars/Olympus 0 3 * * *": time zone "Mars/Olympus": unknown time zone Mars/Olympus`},
	{"TZ= 0 3 * * *", "", `schedule "TZ= 0 3 * * *": empty time zone in "TZ="`},
	{"TZ=../../etc/passwd 0 3 * * *", "", `time zone "../../etc/passwd"`},
	{"0 3 * * *", "Nowhere/Land", `schedule "0 3 * * *": time zone "Nowhere/Land": unknown time zone`},
	{"TZ=UTC", "", `has 0 fields`},
	{"0 0 31 2 *", "UTC", `schedule "0 0 31 2 *": never fires`},
	{"0 0 30 2 *", "UTC", `never fires`},
}

func TestParseSpec(t *testing.T) {
	for _, tt := range parseTests {
		s, err := ParseSpec(tt.expr, tt.tz)
		if err != nil {
			t.Errorf("ParseSpec(%q, %q): %v", tt.expr, tt.tz, err)
			continue
		}
		if s.Cron != tt.cron || s.Location.String() != tt.loc {
			t.Errorf("ParseSpec(%q, %q) = %q in %s; want %q in %s", tt.expr, tt.tz, s.Cron, s.Location, tt.cron, tt.loc)
		}
		if s.Jitter != 0 || s.AllowOverlap {
			t.Errorf("ParseSpec(%q) set Jitter or AllowOverlap", tt.expr)
		}
	}
}

func TestParseSpecErrors(t *testing.T) {
	for _, tt := range parseErrorTests {
		s, err := ParseSpec(tt.expr, tt.tz)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseSpec(%q, %q) = %+v, %v; want error containing %q", tt.expr, tt.tz, s, err, tt.want)
		}
	}
}

func TestSpecStringRoundTrip(t *testing.T) {
	for _, tt := range parseTests {
		s, err := ParseSpec(tt.expr, tt.tz)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseSpec(s.String(), "UTC")
		if err != nil || back.Cron != s.Cron || back.Location.String() != s.Location.String() {
			t.Errorf("ParseSpec(%q) = %+v, %v; want %+v", s.String(), back, err, s)
		}
	}
}

func mustSpec(t testing.TB, expr string) Spec {
	t.Helper()
	s, err := ParseSpec(expr, "UTC")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func budapest(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Budapest")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestSpecNextPrev(t *testing.T) {
	bp := budapest(t)
	utc := func(mo time.Month, d, h, m int) time.Time { return time.Date(2026, mo, d, h, m, 0, 0, time.UTC) }
	bud := func(mo time.Month, d, h, m int) time.Time { return time.Date(2026, mo, d, h, m, 0, 0, bp) }
	// CEST is UTC+2, CET UTC+1. On 2026-03-29 clocks go from 02:00 CET to
	// 03:00 CEST (01:00 UTC); on 2026-10-25 from 03:00 CEST back to 02:00
	// CET (01:00 UTC), so 02:00-03:00 happens twice.
	tests := []struct {
		expr       string
		from       time.Time
		next, prev time.Time
	}{
		{"0 3 * * *", utc(1, 1, 3, 0), utc(1, 2, 3, 0), utc(12, 31, 3, 0).AddDate(-1, 0, 0)},
		{"0 3 * * *", utc(1, 1, 2, 59).Add(59*time.Second + 900*time.Millisecond), utc(1, 1, 3, 0), utc(12, 31, 3, 0).AddDate(-1, 0, 0)},
		{"0 3 * * *", utc(1, 1, 3, 0).Add(500 * time.Millisecond), utc(1, 2, 3, 0), utc(1, 1, 3, 0)},
		{"*/15 9-17 * * MON-FRI", utc(1, 2, 17, 45), utc(1, 5, 9, 0), utc(1, 2, 17, 30)}, // Friday evening to Monday
		{"0 0 L * *", utc(2, 10, 0, 0), utc(2, 28, 0, 0), utc(1, 31, 0, 0)},
		{"0 0 29 2 *", utc(3, 1, 0, 0), time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC), time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)},
		// A time zone other than the argument's.
		{"TZ=Europe/Budapest 0 3 * * *", utc(1, 1, 12, 0), utc(1, 2, 2, 0), utc(1, 1, 2, 0)},
		// Spring forward: the skipped 02:30 fires at the jump, 03:00 CEST.
		{"TZ=Europe/Budapest 30 2 * * *", bud(3, 28, 12, 0), bud(3, 29, 3, 0), bud(3, 28, 2, 30)},
		{"TZ=Europe/Budapest 30 2 * * *", bud(3, 29, 3, 0), bud(3, 30, 2, 30), bud(3, 28, 2, 30)},
		{"TZ=Europe/Budapest 30 2 * * *", bud(3, 29, 12, 0), bud(3, 30, 2, 30), bud(3, 29, 3, 0)},
		{"TZ=Europe/Budapest 0 * * * *", bud(3, 29, 1, 0), bud(3, 29, 3, 0), bud(3, 29, 0, 0)},
		{"TZ=Europe/Budapest 0 3 * * *", bud(3, 29, 0, 0), bud(3, 29, 3, 0), bud(3, 28, 3, 0)},
		// Fall back: 02:30 fires once, at its second occurrence (CET).
		{"TZ=Europe/Budapest 30 2 * * *", bud(10, 25, 0, 0), utc(10, 25, 1, 30), bud(10, 24, 2, 30)},
		{"TZ=Europe/Budapest 30 2 * * *", utc(10, 25, 1, 30), bud(10, 26, 2, 30), bud(10, 24, 2, 30)},
	}
	for _, tt := range tests {
		s := mustSpec(t, tt.expr)
		if got := s.Next(tt.from); !got.Equal(tt.next) {
			t.Errorf("%q.Next(%v) = %v; want %v", tt.expr, tt.from, got, tt.next)
		}
		if got := s.Prev(tt.from); !got.Equal(tt.prev) {
			t.Errorf("%q.Prev(%v) = %v; want %v", tt.expr, tt.from, got, tt.prev)
		}
	}
}

// TestSpecNextPrevAgree walks the ticks over both 2026 DST changes in
// Budapest and New York: each tick is after the last, and Prev undoes Next.
func TestSpecNextPrevAgree(t *testing.T) {
	for _, expr := range []string{
		"TZ=Europe/Budapest */20 * * * *", "TZ=Europe/Budapest 30 2 * * *", "TZ=Europe/Budapest 0 * * * *",
		"TZ=America/New_York 15 1,2 * * *", "TZ=Europe/Budapest 0 0 L * *",
	} {
		s := mustSpec(t, expr)
		for _, day := range []time.Time{time.Date(2026, 3, 26, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 23, 0, 0, 0, 0, time.UTC),
			time.Date(2026, 3, 6, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 30, 0, 0, 0, 0, time.UTC)} {
			tick := s.Next(day)
			for tick.Before(day.AddDate(0, 0, 5)) {
				next := s.Next(tick)
				if !next.After(tick) {
					t.Fatalf("%q.Next(%v) = %v; not after", expr, tick, next)
				}
				if p := s.Prev(next); !p.Equal(tick) {
					t.Errorf("%q.Prev(%v) = %v; want %v", expr, next, p, tick)
				}
				tick = next
			}
		}
	}
}

func TestSpecInvalidNeverFires(t *testing.T) {
	for _, s := range []Spec{{}, {Cron: "* * * * * *"}, {Cron: "61 * * * *"}, {Cron: "garbage"}} {
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		if n, p := s.Next(now), s.Prev(now); !n.IsZero() || !p.IsZero() {
			t.Errorf("%+v: Next = %v, Prev = %v; want zero times", s, n, p)
		}
	}
}

func FuzzParseSpec(f *testing.F) {
	for _, tt := range parseTests {
		f.Add(tt.expr, tt.tz)
	}
	for _, tt := range parseErrorTests {
		f.Add(tt.expr, tt.tz)
	}
	ref := time.Date(2026, 3, 29, 0, 30, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, expr, tz string) {
		s, err := ParseSpec(expr, tz)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "schedule ") {
				t.Errorf("error %q does not start with the schedule", err)
			}
			return
		}
		back, err := ParseSpec(s.String(), "")
		if err != nil || back.Cron != s.Cron || back.Location.String() != s.Location.String() {
			t.Errorf("ParseSpec(%q) = %+v, %v; want %+v", s.String(), back, err, s)
		}
		n := s.Next(ref)
		if n.IsZero() || !n.After(ref) {
			t.Errorf("%q.Next(%v) = %v; want a later tick", expr, ref, n)
		}
		if p := s.Prev(n); !p.IsZero() && !p.Before(n) {
			t.Errorf("%q.Prev(%v) = %v; not before", expr, n, p)
		}
	})
}
