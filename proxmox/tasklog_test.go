package proxmox_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
)

// countingSource counts the lines each read of a task log transferred.
type countingSource struct {
	proxmox.TaskLogSource
	lines, reads int
	starts       []int
}

func (c *countingSource) TaskLog(ctx context.Context, upid proxmox.UPID, start, limit int) ([]proxmox.LogLine, error) {
	ls, err := c.TaskLogSource.TaskLog(ctx, upid, start, limit)
	c.lines += len(ls)
	c.reads++
	c.starts = append(c.starts, start)
	return ls, err
}

// TestTaskLogReaderFollowsARunningBackup follows a two-guest vzdump of the
// simulator (whose log grows while it runs) every 10 s of fake time: the
// lines read add up to the finished log exactly, in order, and each line
// crossed the wire once — the reader asks from where it stopped, not for
// the whole log again.
func TestTaskLogReaderFollowsARunningBackup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := &pvesim.Sim{TaskDuration: time.Minute}
		c := simClient(t, sim)
		ctx := context.Background()
		upid, err := c.Vzdump(ctx, proxmox.VzdumpOptions{VMIDs: []int{pvesim.CustomerWeb, pvesim.CustomerApp}, Storage: "usb-backup"})
		if err != nil {
			t.Fatal(err)
		}
		src := &countingSource{TaskLogSource: c}
		r := proxmox.NewTaskLogReader(src, upid)
		var got []string
		grew := 0
		for {
			st, err := c.TaskStatusOnce(ctx, upid)
			if err != nil {
				t.Fatal(err)
			}
			lines, err := r.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(lines) > 0 {
				grew++
			}
			for i, l := range lines {
				if want := len(got) + i + 1; l.N != want {
					t.Fatalf("line %q numbered %d; want %d", l.T, l.N, want)
				}
			}
			for _, l := range lines {
				got = append(got, l.T)
			}
			if !st.Running() {
				break
			}
			time.Sleep(10 * time.Second)
		}
		view, _ := sim.Task(upid.String())
		if !slices.Equal(got, view.Log) {
			t.Fatalf("lines read:\n%q\nthe task's log:\n%q", got, view.Log)
		}
		if grew < 4 {
			t.Errorf("the log grew in %d of the reads; want it to grow while the backup ran", grew)
		}
		if src.lines != len(view.Log) || r.Read() != len(view.Log) {
			t.Errorf("%d lines transferred (reader at %d) for a log of %d; want each once", src.lines, r.Read(), len(view.Log))
		}
		if !slices.IsSorted(src.starts) || src.starts[len(src.starts)-1] == 0 {
			t.Errorf("reads started at %v; want increasing offsets", src.starts)
		}
	})
}

// fakeLog is a task log as a host might serve it.
type fakeLog struct {
	pages       [][]proxmox.LogLine // answers, one per call; the last repeats
	ignoreStart bool
	fail        error
	calls       int
}

func (f *fakeLog) TaskLog(_ context.Context, _ proxmox.UPID, start, _ int) ([]proxmox.LogLine, error) {
	if f.fail != nil {
		return nil, f.fail
	}
	p := f.pages[min(f.calls, len(f.pages)-1)]
	f.calls++
	if f.ignoreStart {
		return p, nil
	}
	var out []proxmox.LogLine
	for _, l := range p {
		if l.N > start {
			out = append(out, l)
		}
	}
	return out, nil
}

func lines(ts ...string) []proxmox.LogLine {
	out := make([]proxmox.LogLine, len(ts))
	for i, t := range ts {
		out[i] = proxmox.LogLine{N: i + 1, T: t}
	}
	return out
}

func TestTaskLogReaderHostQuirks(t *testing.T) {
	ctx := context.Background()
	upid, _ := proxmox.ParseUPID(upidWait)
	texts := func(ls []proxmox.LogLine) []string {
		var out []string
		for _, l := range ls {
			out = append(out, l.T)
		}
		return out
	}
	tests := []struct {
		name string
		log  *fakeLog
		want [][]string // what each Next returns
	}{
		{"an empty log's placeholder is no line", &fakeLog{pages: [][]proxmox.LogLine{
			lines("no content"), lines("INFO: starting new backup job"), lines("INFO: starting new backup job", "TASK OK"),
		}}, [][]string{nil, {"INFO: starting new backup job"}, {"TASK OK"}}},
		{"a log file not there yet is no line", &fakeLog{pages: [][]proxmox.LogLine{
			lines("unable to open file - No such file or directory"), lines("first"),
		}}, [][]string{nil, {"first"}}},
		{"a host that ignores start sends nothing twice", &fakeLog{ignoreStart: true, pages: [][]proxmox.LogLine{
			lines("a"), lines("a", "b", "c"), lines("a", "b", "c"), lines("a", "b", "c", "d"),
		}}, [][]string{{"a"}, {"b", "c"}, nil, {"d"}}},
		{"no content later is a line", &fakeLog{pages: [][]proxmox.LogLine{
			lines("x"), lines("x", "no content"),
		}}, [][]string{{"x"}, {"no content"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := proxmox.NewTaskLogReader(tc.log, upid)
			for i, want := range tc.want {
				got, err := r.Next(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(texts(got), want) {
					t.Errorf("Next #%d = %q; want %q", i+1, texts(got), want)
				}
			}
		})
	}

	// A failed read keeps the reader's place.
	f := &fakeLog{pages: [][]proxmox.LogLine{lines("a", "b")}}
	r := proxmox.NewTaskLogReader(f, upid)
	if _, err := r.Next(ctx); err != nil {
		t.Fatal(err)
	}
	f.fail = &proxmox.APIError{Status: 595, Message: "Connection refused"}
	if _, err := r.Next(ctx); !errors.Is(err, f.fail) || r.Read() != 2 {
		t.Errorf("Next after a failed read: err %v, at %d; want the error wrapped, still at 2", err, r.Read())
	}
	f.fail, f.pages = nil, [][]proxmox.LogLine{lines("a", "b", "c")}
	if got, _ := r.Next(ctx); len(got) != 1 || got[0].T != "c" {
		t.Errorf("Next after recovering = %v; want [c]", got)
	}
}

func TestTaskProgress(t *testing.T) {
	tests := []struct {
		line string
		pct  int
		ok   bool
	}{
		{"INFO:  42% (13.4 GiB of 32.0 GiB) in 1m 2s, read: 221.2 MiB/s, write: 60.0 MiB/s", 42, true},
		{"INFO: 100% (32.0 GiB of 32.0 GiB) in 2m 30s, read: 218.5 MiB/s, write: 58.1 MiB/s", 100, true},
		{"INFO:   0% (0.0 B of 32.0 GiB) in 0s, read: 0 B/s, write: 0 B/s", 0, true},
		{"progress 7% (read 2405181685 bytes, duration 9 sec)", 7, true},
		{"progress 100% (read 34359738368 bytes, zeroes = 71% (24696061952 bytes), duration 120 sec)", 100, true},
		{"INFO: backup is sparse: 24.00 GiB (75%) total zero data", 0, false},
		{"INFO: Total bytes written: 2576980350 (2.4GiB, 40MiB/s)", 0, false},
		{"INFO: 420% (1 of 2) in 1s", 0, false},
		{"", 0, false},
	}
	for _, tc := range tests {
		pct, ok := proxmox.TaskProgress(tc.line)
		if pct != tc.pct || ok != tc.ok {
			t.Errorf("TaskProgress(%q) = %d, %v; want %d, %v", tc.line, pct, ok, tc.pct, tc.ok)
		}
	}
}

// TestReadOnlyClient: a read-only client reads, and refuses every other
// method before it is sent — the host receives no request for it.
func TestReadOnlyClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := &pvesim.Sim{}
		rt, stop := pvesim.PipeTransport(sim)
		t.Cleanup(stop)
		token, err := proxmox.ParseToken(pvesim.DefaultTokenID + "=" + pvesim.DefaultTokenSecret)
		if err != nil {
			t.Fatal(err)
		}
		c, err := proxmox.New(proxmox.Config{Endpoint: "https://pve.sim:8006", Node: pvesim.DefaultNode, Token: token},
			proxmox.WithTransport(rt), proxmox.WithReadOnly())
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if gs, err := c.Guests(ctx); err != nil || len(gs) == 0 {
			t.Fatalf("Guests = %v, %v; want the guests", gs, err)
		}
		before := sim.Requests()
		_, err = c.Vzdump(ctx, proxmox.VzdumpOptions{VMIDs: []int{pvesim.CustomerWeb}, Storage: "usb-backup"})
		if !errors.Is(err, proxmox.ErrReadOnly) || !errors.Is(err, proxmox.ErrNotSent) {
			t.Errorf("Vzdump on a read-only client = %v; want ErrReadOnly and ErrNotSent", err)
		}
		_, err = c.SetConfig(ctx, proxmox.LXC, pvesim.CustomerWeb, map[string]string{"description": "x"}, nil)
		if !errors.Is(err, proxmox.ErrReadOnly) {
			t.Errorf("SetConfig on a read-only client = %v; want ErrReadOnly", err)
		}
		if err := c.StopTask(ctx, proxmox.UPID{Node: "demo-felhom", Type: "vzdump", PID: 1, StartTime: time.Unix(1, 0)}); !errors.Is(err, proxmox.ErrReadOnly) {
			t.Errorf("StopTask on a read-only client = %v; want ErrReadOnly", err)
		}
		if n := sim.Requests() - before; n != 0 || sim.Mutations(pvesim.CustomerWeb) != 0 {
			t.Errorf("the host received %d requests (%d mutations of 101); want none", n, sim.Mutations(pvesim.CustomerWeb))
		}
	})
}
