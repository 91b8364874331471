package agent

import (
	"errors"
	"log/slog"
	"math"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// tokenAttr is a value that redacts itself, as secrets do.
type tokenAttr string

func (tokenAttr) LogValue() slog.Value { return slog.StringValue("[redacted]") }

func TestAttrsJSON(t *testing.T) {
	tok, _ := proxmox.ParseToken("felhom@pve!agent=00000000-0000-0000-0000-00000000beef")
	for _, tc := range []struct {
		attrs []slog.Attr
		want  string
	}{
		{nil, ""},
		{[]slog.Attr{slog.String("s", "x"), slog.Int("i", -3), slog.Uint64("u", 7), slog.Bool("b", true)}, `{"b":true,"i":-3,"s":"x","u":7}`},
		{[]slog.Attr{slog.Float64("f", 1.5), slog.Float64("nan", math.NaN()), slog.Float64("inf", math.Inf(1))}, `{"f":1.5,"inf":"+Inf","nan":"NaN"}`},
		{[]slog.Attr{slog.Duration("took", 1500*time.Millisecond), slog.Time("at", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))}, `{"at":"2026-01-02T03:04:05Z","took":"1.5s"}`},
		{[]slog.Attr{slog.Any("err", errors.New("boom")), slog.Any("nil", nil)}, `{"err":"boom","nil":null}`},
		{[]slog.Attr{slog.Group("g", slog.Int("a", 1), slog.Group("h", slog.String("b", "c")))}, `{"g":{"a":1,"h":{"b":"c"}}}`},
		{[]slog.Attr{slog.Group("", slog.Int("inline", 1))}, `{"inline":1}`},
		{[]slog.Attr{slog.Any("secret", tokenAttr("hunter2")), slog.Any("token", tok.Secret)}, `{"secret":"[redacted]","token":"[REDACTED]"}`},
		{[]slog.Attr{slog.Any("list", []int{1, 2}), slog.Any("map", map[string]int{"a": 1})}, `{"list":[1,2],"map":{"a":1}}`},
		{[]slog.Attr{slog.Any("c", 1+2i)}, `{"c":"(1+2i)"}`}, // JSON has no complex numbers: fmt form
		{[]slog.Attr{slog.String("", "no key")}, ""},
		{[]slog.Attr{slog.Any("whole token", tok)}, `{"whole token":"felhom@pve!agent=[REDACTED]"}`},
	} {
		if got := string(attrsJSON(tc.attrs)); got != tc.want {
			t.Errorf("attrsJSON(%v) = %s; want %s", tc.attrs, got, tc.want)
		}
	}
}
