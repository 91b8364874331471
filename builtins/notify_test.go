package builtins

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"go.starlark.net/starlark"

	"gitea.dooplex.hu/admin/felhom-agent/internal/logtest"
)

type recordingNotifier struct{ got []Notification }

func (r *recordingNotifier) Notify(_ context.Context, n Notification) (bool, error) {
	r.got = append(r.got, n)
	return true, nil
}

func TestNotifySend(t *testing.T) {
	rn := &recordingNotifier{}
	env := &Env{Context: context.Background(), Logger: slog.New(slog.DiscardHandler), Notify: rn}
	v, err := exec(t, env, `r = notify.send("disk 3 is failing", level = "critical", vmid = 101, disk = "sdc")`)
	if err != nil {
		t.Fatal(err)
	}
	if v["r"] != starlark.True || len(rn.got) != 1 {
		t.Fatalf("notify.send = %v, %d sent", v["r"], len(rn.got))
	}
	n := rn.got[0]
	if n.Message != "disk 3 is failing" || n.Level != "critical" || n.Fields["vmid"] != "101" || n.Fields["disk"] != "sdc" {
		t.Errorf("sent %+v", n)
	}

	rec := logtest.New()
	env = &Env{Context: context.Background(), Logger: slog.New(rec)}
	v, err = exec(t, env, `r = notify.send("hello")`)
	if err != nil || v["r"] != starlark.False || len(rec.Records()) != 1 || !strings.Contains(rec.Records()[0].Message, "no notification channel") {
		t.Errorf("notify.send without a channel = %v, %v, %v", v["r"], err, rec.Records())
	}
	for _, src := range []string{`notify.send()`, `notify.send(1)`, `notify.send("x", level = "loud")`} {
		if _, err := exec(t, env, src); err == nil {
			t.Errorf("exec(%s) succeeded; want an error", src)
		}
	}
	if _, err := execThread(newLoadThread(slog.New(slog.DiscardHandler)), `notify.send("x")`); err == nil || !strings.Contains(err.Error(), "notify.send: may only be called while a playbook runs") {
		t.Errorf("notify.send at load time: %v", err)
	}
}
