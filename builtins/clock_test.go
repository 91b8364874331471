package builtins

import (
	"strings"
	"testing"
	"time"

	startime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
)

// TestTimeNowFollowsEnvNow: a run's time.now() reads Env.Now, the clock
// the run was given (the simulated host's in playbook tests), not a global.
func TestTimeNowFollowsEnvNow(t *testing.T) {
	at := time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)
	now := TimeTable.Module().Members["now"]
	thread := &starlark.Thread{}
	SetEnv(thread, &Env{Now: func() time.Time { return at }})
	v, err := starlark.Call(thread, now, nil, nil)
	if err != nil || !time.Time(v.(startime.Time)).Equal(at) {
		t.Errorf("time.now() with Env.Now = %v, %v; want %v", v, err, at)
	}
	plain := &starlark.Thread{}
	SetEnv(plain, &Env{})
	v, err = starlark.Call(plain, now, nil, nil)
	if err != nil || time.Since(time.Time(v.(startime.Time))) > time.Minute {
		t.Errorf("time.now() without Env.Now = %v, %v; want the host's time", v, err)
	}
	if _, err := starlark.Call(thread, now, starlark.Tuple{starlark.MakeInt(1)}, nil); err == nil || !strings.Contains(err.Error(), "time.now: got 1 arguments, want at most 0") {
		t.Errorf("time.now(1) = %v; want it refused", err)
	}
}
