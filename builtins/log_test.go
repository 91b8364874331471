package builtins

import (
	"context"
	"log/slog"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/internal/logtest"
)

func TestLogRoutesToRunLogger(t *testing.T) {
	rec := logtest.New()
	env := &Env{Context: context.Background(), Logger: slog.New(rec).With("run", "r1")}
	src := `
log.debug("d")
log.info("backed up", vmid = 101, volid = "usb:backup/x.tar.zst", ok = True, ratio = 0.5, took = 90 * time.second, tags = ["a"])
log.warn("w", n = None)
log.error("e", big = 1 << 70)
`
	if _, err := exec(t, env, src); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		level slog.Level
		msg   string
		attrs string
	}{
		{slog.LevelDebug, "d", "run=r1"},
		{slog.LevelInfo, "backed up", `vmid=101 volid=usb:backup/x.tar.zst ok=true ratio=0.5 took=1m30s tags=["a"] run=r1`},
		{slog.LevelWarn, "w", "n=<nil> run=r1"},
		{slog.LevelError, "e", "big=1180591620717411303424 run=r1"},
	}
	got := rec.Records()
	if len(got) != len(want) {
		t.Fatalf("got %d records; want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].Level != w.level || got[i].Message != w.msg || attrs(got[i]) != w.attrs {
			t.Errorf("record %d = %v %q %s; want %v %q %s", i, got[i].Level, got[i].Message, attrs(got[i]), w.level, w.msg, w.attrs)
		}
	}
}

func TestLogAtLoadTime(t *testing.T) {
	rec := logtest.New()
	thread := newLoadThread(slog.New(rec))
	if _, err := execThread(thread, `log.info("declaring", file = "x.star")`); err != nil {
		t.Fatal(err)
	}
	if got := rec.Records(); len(got) != 1 || got[0].Message != "declaring" || attrs(got[0]) != "file=x.star" {
		t.Errorf("load-time records = %v; want one \"declaring\" with file=x.star", got)
	}
}

func TestLogRefusesBadArguments(t *testing.T) {
	for _, src := range []string{`log.info()`, `log.info(1)`, `log.info("a", "b")`} {
		if _, err := exec(t, runEnv(context.Background()), src); err == nil {
			t.Errorf("exec(%s) succeeded; want an argument error", src)
		}
	}
}
