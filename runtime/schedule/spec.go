package schedule

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/adhocore/gronx"
)

// Spec is one job's timer: when it fires and how.
//
// The zero value never fires. Specs from [ParseSpec] are valid; a Spec built
// by hand is checked by [Scheduler.Set].
type Spec struct {
	// Cron is a five-field cron expression, "minute hour day-of-month month
	// day-of-week", in the canonical form ParseSpec returns: numbers only,
	// no names or macros. Day-of-month and day-of-week combine as in Vixie
	// cron: when both are restricted, a day matching either fires.
	Cron string
	// Location is the time zone the fields are read in; nil means
	// time.Local.
	Location *time.Location
	// Jitter delays each fire by a random duration in [0, Jitter), so that
	// many hosts with the same schedule do not all start at once. The
	// scheduled time the job is told stays the unjittered tick.
	Jitter time.Duration
	// AllowOverlap lets a fire start while the job's previous fire is still
	// running. By default such a tick is skipped.
	AllowOverlap bool
}

// field is one of the five cron fields.
type field struct {
	name   string
	lo, hi int
	names  map[string]int // symbolic values, upper case
}

var fields = [5]field{
	{name: "minute", lo: 0, hi: 59},
	{name: "hour", lo: 0, hi: 23},
	{name: "day-of-month", lo: 1, hi: 31},
	{name: "month", lo: 1, hi: 12, names: map[string]int{
		"JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6,
		"JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10, "NOV": 11, "DEC": 12}},
	{name: "day-of-week", lo: 0, hi: 7, names: map[string]int{
		"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}},
}

const (
	fieldDOM = 2
	fieldDOW = 4
)

// macros are the standard cron shorthands.
var macros = map[string]string{
	"@yearly":   "0 0 1 1 *",
	"@annually": "0 0 1 1 *",
	"@monthly":  "0 0 1 * *",
	"@weekly":   "0 0 * * 0",
	"@daily":    "0 0 * * *",
	"@midnight": "0 0 * * *",
	"@hourly":   "0 * * * *",
}

// ParseSpec parses a schedule: a five-field cron expression or a macro
// (@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly),
// optionally prefixed with "TZ=Area/City " (or "CRON_TZ=Area/City ") to read
// it in that time zone. Without a prefix the expression is read in tz; ""
// means time.Local.
//
// Each field is "*", a value, a range "a-b", a list "x,y,...", and any of
// these but a list with a step "/n". Months and weekdays may be names (JAN,
// MON; any case); weekday 7 is Sunday. Day-of-month also takes "?", "L"
// (last day) and "nW" (weekday nearest n); day-of-week takes "?", "nL" (last
// weekday n of the month) and "n#k" (k-th weekday n). An expression that
// matches no date ("0 0 31 2 *") is refused.
//
// Errors quote the schedule and name the field and what is wrong, e.g.
// `schedule "61 * * * *": minute field "61": 61 is out of range 0-59`.
// Jitter and AllowOverlap are left zero for the caller to set.
func ParseSpec(expr string, tz string) (Spec, error) {
	fail := func(format string, args ...any) (Spec, error) {
		return Spec{}, fmt.Errorf("schedule %q: %s", expr, fmt.Sprintf(format, args...))
	}
	words := strings.Fields(expr)
	if len(words) > 0 {
		if name, ok := cutTZ(words[0]); ok {
			if name == "" {
				return fail("empty time zone in %q", words[0])
			}
			tz, words = name, words[1:]
		}
	}
	loc := time.Local
	if tz != "" {
		var err error
		if loc, err = time.LoadLocation(tz); err != nil {
			return fail("time zone %q: %v", tz, err)
		}
	}
	cron, err := parseCron(words)
	if err != nil {
		return fail("%v", err)
	}
	sp := Spec{Cron: cron, Location: loc}
	if err := sp.reachable(); err != nil {
		return fail("%v", err)
	}
	return sp, nil
}

// parseCron checks a cron expression split into words (five fields or one
// macro) and returns it in canonical numeric form.
func parseCron(words []string) (string, error) {
	if len(words) == 1 && strings.HasPrefix(words[0], "@") {
		m, ok := macros[strings.ToLower(words[0])]
		if !ok {
			return "", fmt.Errorf("unknown macro %q (want @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly)", words[0])
		}
		words = strings.Fields(m)
	}
	if len(words) != len(fields) {
		return "", fmt.Errorf("has %d fields, want 5 (minute hour day-of-month month day-of-week) or a macro like @daily", len(words))
	}
	canon := make([]string, len(words))
	for i, w := range words {
		c, err := parseField(i, w)
		if err != nil {
			return "", fmt.Errorf("%s field %q: %w", fields[i].name, w, err)
		}
		canon[i] = c
	}
	cron := strings.Join(canon, " ")
	// A last check with the library that computes the ticks, so that an
	// expression accepted here is one it understands.
	if !gronx.IsValid(cron) {
		return "", fmt.Errorf("not understood by the cron library (as %q)", cron)
	}
	return cron, nil
}

// reachable checks that s has a tick at all (from a fixed date, so the
// answer does not depend on when it is asked: five-field expressions repeat
// within 28 years).
func (s Spec) reachable() error {
	if s.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, s.loc())).IsZero() {
		return errors.New("never fires: no date matches its day-of-month, month and day-of-week")
	}
	return nil
}

// check reports whether s.Cron is a valid expression in canonical form with
// a tick, as ParseSpec returns them.
func (s Spec) check() error {
	cron, err := parseCron(strings.Fields(s.Cron))
	if err != nil {
		return fmt.Errorf("schedule %q: %w", s.Cron, err)
	}
	if cron != s.Cron {
		return fmt.Errorf("schedule %q: not in canonical form (%q); use ParseSpec", s.Cron, cron)
	}
	if err := s.reachable(); err != nil {
		return fmt.Errorf("schedule %q: %w", s.Cron, err)
	}
	return nil
}

// cutTZ reports whether w is a "TZ=" or "CRON_TZ=" prefix and returns the name.
func cutTZ(w string) (string, bool) {
	if name, ok := strings.CutPrefix(w, "TZ="); ok {
		return name, true
	}
	return strings.CutPrefix(w, "CRON_TZ=")
}

// parseField checks field i and returns it in canonical numeric form.
func parseField(i int, s string) (string, error) {
	items := strings.Split(s, ",")
	for k, item := range items {
		c, err := parseItem(i, item)
		if err != nil {
			if len(items) > 1 {
				return "", fmt.Errorf("item %q: %w", item, err)
			}
			return "", err
		}
		items[k] = c
	}
	return strings.Join(items, ","), nil
}

func parseItem(i int, item string) (string, error) {
	f := fields[i]
	switch {
	case item == "":
		return "", errors.New("empty list item")
	case item == "?" && (i == fieldDOM || i == fieldDOW):
		return "*", nil
	case item == "L" && i == fieldDOM:
		return "L", nil
	case i == fieldDOM && strings.HasSuffix(item, "W"):
		n, err := value(f, strings.TrimSuffix(item, "W"))
		if err != nil {
			return "", err
		}
		return strconv.Itoa(n) + "W", nil
	case i == fieldDOW && strings.HasSuffix(item, "L") && !strings.ContainsAny(item, "-/*"):
		n, err := value(f, strings.TrimSuffix(item, "L"))
		if err != nil {
			return "", err
		}
		return strconv.Itoa(n) + "L", nil
	case i == fieldDOW && strings.Contains(item, "#"):
		day, nth, _ := strings.Cut(item, "#")
		n, err := value(f, day)
		if err != nil {
			return "", err
		}
		k, err := strconv.Atoi(nth)
		if err != nil || k < 1 || k > 5 || !digits(nth) {
			return "", fmt.Errorf("%q after # is not an occurrence 1-5", nth)
		}
		return fmt.Sprintf("%d#%d", n, k), nil
	}

	base, stepText, hasStep := strings.Cut(item, "/")
	step := ""
	if hasStep {
		n, err := strconv.Atoi(stepText)
		if err != nil || !digits(stepText) {
			return "", fmt.Errorf("step %q is not a number", stepText)
		}
		if n < 1 || n > f.hi {
			return "", fmt.Errorf("step %d is out of range 1-%d", n, f.hi)
		}
		step = "/" + strconv.Itoa(n)
	}
	if base == "*" {
		return "*" + step, nil
	}
	from, to, isRange := strings.Cut(base, "-")
	a, err := value(f, from)
	if err != nil {
		return "", err
	}
	if !isRange {
		return strconv.Itoa(a) + step, nil
	}
	b, err := value(f, to)
	if err != nil {
		return "", err
	}
	if b < a {
		return "", fmt.Errorf("range %d-%d is backwards", a, b)
	}
	return fmt.Sprintf("%d-%d%s", a, b, step), nil
}

// value parses one number or name of field f and checks its range.
func value(f field, s string) (int, error) {
	if n, ok := f.names[strings.ToUpper(s)]; ok {
		return n, nil
	}
	if !digits(s) || len(s) > 3 {
		if f.names != nil {
			return 0, fmt.Errorf("%q is not a number or a %s name", s, f.name)
		}
		return 0, fmt.Errorf("%q is not a number", s)
	}
	n, _ := strconv.Atoi(s)
	if n < f.lo || n > f.hi {
		return 0, fmt.Errorf("%d is out of range %d-%d", n, f.lo, f.hi)
	}
	return n, nil
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// String returns the spec as a schedule ParseSpec reads back to the same
// Cron and Location: "TZ=Europe/Budapest 0 3 * * *".
func (s Spec) String() string {
	return "TZ=" + s.loc().String() + " " + s.Cron
}

func (s Spec) loc() *time.Location {
	if s.Location == nil {
		return time.Local
	}
	return s.Location
}

// valid reports whether s.Cron can be given to gronx: it has the shape
// ParseSpec produces. Next and Prev answer zero for anything else.
func (s Spec) valid() bool {
	return len(strings.Fields(s.Cron)) == len(fields) && gronx.IsValid(s.Cron)
}

// Next returns the first tick strictly after after, in s.Location, or the
// zero time if there is none (an invalid Cron) or the cron library gives up.
//
// Daylight saving time: when clocks go forward, ticks in the skipped hour
// fire once, at the moment of the jump (as cronie does), so a 02:30 job
// still runs that night. When clocks go back, a wall-clock time that occurs
// twice fires once.
func (s Spec) Next(after time.Time) time.Time {
	if !s.valid() {
		return time.Time{}
	}
	after = after.In(s.loc())
	n, err := gronx.NextTickAfter(s.Cron, after.Truncate(time.Second), false)
	if err != nil || !n.After(after) {
		return time.Time{}
	}
	for gap := range s.gaps(after, n) {
		return gap // the earliest
	}
	return n
}

// Prev returns the last tick strictly before before, in s.Location, or the
// zero time if there is none. It agrees with [Spec.Next]: Prev(Next(t)) is
// the last tick at or before t, daylight saving time included.
func (s Spec) Prev(before time.Time) time.Time {
	if !s.valid() {
		return time.Time{}
	}
	before = before.In(s.loc())
	// Ticks are whole seconds: strictly before a whole second that is not
	// before `before` is strictly before `before`.
	bound := before.Truncate(time.Second)
	if bound.Before(before) {
		bound = bound.Add(time.Second)
	}
	// gronx's backward search can stumble over the hour that repeats when
	// clocks go back (it returns the wrong occurrence, or none). So its
	// answer is only a starting point: from it, walk forward with Next,
	// which defines what a tick is. If the start is not usable, start
	// again three hours earlier, before any repeated hour.
	for _, back := range []time.Duration{0, 3 * time.Hour} {
		p, err := gronx.PrevTickBefore(s.Cron, bound.Add(-back), false)
		if err != nil || !p.Before(before) {
			continue
		}
		p = s.Next(p.Add(-time.Nanosecond)) // the first tick at or after p
		if p.IsZero() || !p.Before(before) {
			continue
		}
		for n := s.Next(p); !n.IsZero() && n.Before(before); n = s.Next(n) {
			p = n
		}
		return p
	}
	return time.Time{}
}

// gaps yields, in order, each instant in (from, to) at which clocks in
// s.Location jump forward over a wall-clock time that the expression
// matches.
func (s Spec) gaps(from, to time.Time) func(yield func(time.Time) bool) {
	return func(yield func(time.Time) bool) {
		t := from.In(s.loc())
		for {
			_, end := t.ZoneBounds()
			if end.IsZero() || !end.Before(to) {
				return
			}
			t = end
			_, before := end.Add(-time.Nanosecond).Zone()
			_, after := end.Zone()
			if after <= before {
				continue // clocks went back, or only the zone's name changed
			}
			// The wall times from end (read at the old offset) for after-before
			// seconds never happened. Ask the library in a zone frozen at the
			// old offset whether one of them is a tick.
			old := time.FixedZone("", before)
			w, err := gronx.NextTickAfter(s.Cron, end.Add(-time.Second).In(old), false)
			if err == nil && w.Before(end.Add(time.Duration(after-before)*time.Second)) {
				if !yield(end) {
					return
				}
			}
		}
	}
}
