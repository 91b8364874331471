package main

import (
	"bytes"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "e904c5f0123456789abcdef"}, {Key: "vcs.time", Value: "2026-12-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"},
	}}
	if got, want := buildInfoOf(bi).String(), "felhom-agent devel (commit e904c5f01234+dirty, built 2026-12-01T10:00:00Z, go1.26.8)"; got != want {
		t.Errorf("buildInfoOf(...).String() = %q; want %q", got, want)
	}
	// --version everywhere, the same line as `version`.
	var v bytes.Buffer
	if code := run([]string{"version"}, &v, &bytes.Buffer{}); code != exitOK {
		t.Fatal(code)
	}
	for _, args := range [][]string{{"--version"}, {"runs", "--version"}, {"run", "--version"}, {"serve", "--version"}} {
		var out bytes.Buffer
		if code := run(args, &out, &bytes.Buffer{}); code != exitOK || out.String() != v.String() || !strings.Contains(out.String(), "(commit ") {
			t.Errorf("%q = %d %q; want %q", args, code, out.String(), v.String())
		}
	}
}
