package proxmox_test

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
)

func TestTasks(t *testing.T) {
	f := newFake(t).fixture("GET /nodes/node1/tasks", "custom/tasks_list.json")
	tasks, err := fakeClient(t, f).Tasks(t.Context(), proxmox.TaskFilter{VMID: 101, TypeFilter: "vzdump", Source: "all", Errors: true, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	wantQuery := url.Values{"vmid": {"101"}, "typefilter": {"vzdump"}, "source": {"all"}, "errors": {"1"}, "limit": {"10"}}
	if q := f.last().Query; !reflect.DeepEqual(q, wantQuery) {
		t.Errorf("query = %v; want %v", q, wantQuery)
	}
	if len(tasks) != 4 {
		t.Fatalf("got %d tasks, want 4", len(tasks))
	}
	want := proxmox.Task{
		UPID: proxmox.MustParseUPID("UPID:pve1:0019A1E0:0A6B7F00:67F3B100:vzsnapshot:101:felhom-agent@pve!agent:"),
		Type: "vzsnapshot", ID: "101", User: "felhom-agent@pve!agent", Node: "pve1", Status: "OK",
		StartTime: time.Unix(1744023808, 0).UTC(), EndTime: time.Unix(1744023811, 0).UTC(), ExitStatus: "OK",
	}
	if !reflect.DeepEqual(tasks[1], want) {
		t.Errorf("tasks[1] = %+v\nwant       %+v", tasks[1], want)
	}
	if r := tasks[0]; r.Status != "RUNNING" || r.ExitStatus != "" || !r.EndTime.IsZero() {
		t.Errorf("running task = %+v; want no exit status and no end", r)
	}
	if w := tasks[2]; w.ID != "" || w.ExitStatus != "WARNINGS: 2" || w.StartTime.Unix() != 1744019456 {
		t.Errorf("vzdump-all task = %+v; want empty id, WARNINGS: 2, start from a string", w)
	}
	if p := tasks[3]; p.ExitStatus != "Permission check failed (/vms/105, VM.Allocate)" {
		t.Errorf("failed task exit status = %q", p.ExitStatus)
	}
}

func TestTasksMalformedUPID(t *testing.T) {
	f := newFake(t).on("GET /nodes/node1/tasks", serveData([]map[string]any{{"upid": "UPID:node1:broken", "type": "x"}}))
	_, err := fakeClient(t, f).Tasks(t.Context(), proxmox.TaskFilter{})
	if err == nil || !strings.Contains(err.Error(), "malformed UPID") {
		t.Errorf("error = %v; want a malformed UPID error", err)
	}
	if q := f.last().Query; len(q) != 0 {
		t.Errorf("zero filter sent query %v; want none", q)
	}
}

// TestTaskStatusOnce checks that a task is asked for on its own node and
// that the UPID travels as one path segment.
func TestTaskStatusOnce(t *testing.T) {
	const other = "UPID:node2:00000002:00000002:00000002:vzstart:101:felhom-agent@pve!agent:"
	f := newFake(t).fixture("GET /nodes/node2/tasks/"+other+"/status", "responses/task_status.pve7x_2.json")
	u := proxmox.MustParseUPID(other)
	st, err := fakeClient(t, f).TaskStatusOnce(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	if want := (proxmox.TaskStatus{UPID: u, Status: "stopped", ExitStatus: "OK"}); st != want {
		t.Errorf("status = %+v; want %+v", st, want)
	}
	if !st.Succeeded() || st.Running() {
		t.Errorf("Succeeded %v Running %v; want true false", st.Succeeded(), st.Running())
	}
}

func TestTaskStatusFixtures(t *testing.T) {
	tests := []struct {
		fixture   string
		running   bool
		succeeded bool
	}{
		{"responses/task_status.pve7x.json", true, false},
		{"responses/task_status.pve7x_2.json", false, true},
		{"responses/task_status.pve7x_3.json", false, false},
	}
	for _, tt := range tests {
		f := newFake(t).fixture("GET /nodes/node1/tasks/"+upidWait+"/status", tt.fixture)
		st, err := fakeClient(t, f).TaskStatusOnce(t.Context(), proxmox.MustParseUPID(upidWait))
		if err != nil || st.Running() != tt.running || st.Succeeded() != tt.succeeded {
			t.Errorf("%s: %+v, %v; want running %v succeeded %v", tt.fixture, st, err, tt.running, tt.succeeded)
		}
	}
}

func TestTaskLog(t *testing.T) {
	f := newFake(t).fixture(logRoute, "responses/task_log.pve7x.json")
	lines, err := fakeClient(t, f).TaskLog(t.Context(), proxmox.MustParseUPID(upidWait), 0, 50)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 5 || lines[4] != (proxmox.LogLine{N: 5, T: "task completed successfully"}) {
		t.Errorf("lines = %+v", lines)
	}
	if q := f.last().Query; !reflect.DeepEqual(q, url.Values{"start": {"0"}, "limit": {"50"}}) {
		t.Errorf("query = %v", q)
	}
}

func TestTaskLogTail(t *testing.T) {
	tests := []struct {
		name      string
		lines     int
		withTotal bool
		n         int
		wantReqs  int
	}{
		{"count known, long log", 30, true, 5, 2},
		{"count known, short log", 4, true, 20, 1},
		{"count known, exact", 20, true, 20, 1},
		{"no count, long log", 1203, false, 3, 4}, // 3, then pages of 500 from line 4
		{"no count, short log", 2, false, 5, 1},
		{"empty log", 0, true, 5, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			all := numbered(tt.lines, "line %d")
			f := newFake(t).on(logRoute, pagedLog(all, tt.withTotal))
			got, err := fakeClient(t, f).TaskLogTail(t.Context(), proxmox.MustParseUPID(upidWait), tt.n)
			if err != nil {
				t.Fatal(err)
			}
			want := all[max(0, len(all)-tt.n):]
			if len(want) == 0 {
				want = []string{}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("tail = %q; want %q", got, want)
			}
			if n := f.count(logRoute); n != tt.wantReqs {
				t.Errorf("%d requests; want %d", n, tt.wantReqs)
			}
		})
	}
}

func TestStopTask(t *testing.T) {
	f := newFake(t).fixture("DELETE /nodes/node1/tasks/"+upidWait, "responses/task_stop.pve7x.json")
	if err := fakeClient(t, f).StopTask(t.Context(), proxmox.MustParseUPID(upidWait)); err != nil {
		t.Fatal(err)
	}
	if err := fakeClient(t, newFake(t)).StopTask(t.Context(), proxmox.UPID{}); err == nil {
		t.Error("StopTask of the zero UPID succeeded")
	}
}

func TestVzdumpArchive(t *testing.T) {
	tests := []struct {
		name    string
		log     []string
		want    string
		wantErr string
	}{
		{
			name: "PVE 8 log", log: logLines(t, "custom/vzdump_log.json"),
			want: "usb-backup:backup/vzdump-lxc-101-2026_11_20-03_00_01.tar.zst",
		},
		{
			name: "older wording", log: []string{"INFO: creating archive '/var/lib/vz/dump/vzdump-lxc-101-2020_01_01-00_00_00.tar.gz'", "TASK OK"},
			want: "usb-backup:backup/vzdump-lxc-101-2020_01_01-00_00_00.tar.gz",
		},
		{
			name: "several guests: the first archive",
			log: []string{
				"INFO: creating vzdump archive '/mnt/usb/dump/vzdump-lxc-101-2026_11_20-03_00_01.tar.zst'",
				"INFO: creating vzdump archive '/mnt/usb/dump/vzdump-lxc-102-2026_11_20-03_00_14.tar.zst'",
			},
			want: "usb-backup:backup/vzdump-lxc-101-2026_11_20-03_00_01.tar.zst",
		},
		{name: "no archive line", log: logLines(t, "responses/task_log.pve7x.json"), wantErr: "names no vzdump archive"},
		{name: "unterminated quote", log: []string{"INFO: creating vzdump archive '/var/lib/vz/dump/vzdump-lxc-1"}, wantErr: "names no vzdump archive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t).on(logRoute, pagedLog(tt.log, true))
			got, err := fakeClient(t, f).VzdumpArchive(t.Context(), proxmox.MustParseUPID(upidWait), "usb-backup")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("VzdumpArchive = %q, %v; want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("VzdumpArchive = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// logLines reads the texts of a task log fixture.
func logLines(t *testing.T, name string) []string {
	var body struct {
		Data []proxmox.LogLine `json:"data"`
	}
	if err := json.Unmarshal(readTestdata(t, name), &body); err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(body.Data))
	for i, l := range body.Data {
		out[i] = l.T
	}
	return out
}

// TestVzdumpBackups: the archive of a one-guest vzdump is the guest's
// oldest backup from after the task's start (upidWait started at
// 1744024257), found in the one listing that is handed back whole.
func TestVzdumpBackups(t *testing.T) {
	const (
		old    = `{"volid":"usb-backup:backup/vzdump-lxc-101-2025_04_06-03_00_00.tar.zst","content":"backup","format":"tar.zst","subtype":"lxc","vmid":101,"size":10,"ctime":1743908400}`
		made   = `{"volid":"usb-backup:backup/vzdump-lxc-101-2025_04_07-11_10_58.tar.zst","content":"backup","format":"tar.zst","subtype":"lxc","vmid":101,"size":10,"ctime":1744024258}`
		same   = `{"volid":"usb-backup:backup/vzdump-lxc-101-2025_04_07-11_10_57.tar.zst","content":"backup","format":"tar.zst","subtype":"lxc","vmid":101,"size":10,"ctime":1744024257}`
		later  = `{"volid":"usb-backup:backup/vzdump-lxc-101-2025_04_07-12_00_00.tar.zst","content":"backup","format":"tar.zst","subtype":"lxc","vmid":101,"size":10,"ctime":1744027200}`
		other  = `{"volid":"usb-backup:backup/vzdump-lxc-102-2025_04_07-11_11_00.tar.zst","content":"backup","format":"tar.zst","subtype":"lxc","vmid":102,"size":10,"ctime":1744024260}`
		pbsNew = `{"volid":"pbs:backup/ct/101/2025-04-07T11:11:00Z","content":"backup","format":"pbs-ct","subtype":"lxc","vmid":101,"size":10,"ctime":1744024260}`
	)
	tests := []struct {
		name, upid string
		listing    []string
		want       string
		wantErr    string
		wantListed int
	}{
		{name: "after older ones", listing: []string{old, made}, want: "usb-backup:backup/vzdump-lxc-101-2025_04_07-11_10_58.tar.zst", wantListed: 2},
		{name: "in the start's second", listing: []string{same, old}, want: "usb-backup:backup/vzdump-lxc-101-2025_04_07-11_10_57.tar.zst", wantListed: 2},
		{name: "a later backup is not the task's", listing: []string{later, made, old}, want: "usb-backup:backup/vzdump-lxc-101-2025_04_07-11_10_58.tar.zst", wantListed: 3},
		{name: "another guest's is not", listing: []string{other, old}, wantErr: "no backup of guest 101 on usb-backup is from after the task's start (2025-04-07T11:10:57Z)"},
		{name: "a PBS snapshot", listing: []string{pbsNew}, want: "pbs:backup/ct/101/2025-04-07T11:11:00Z", wantListed: 1},
		{name: "missing", listing: []string{old}, wantErr: "is from after the task's start", wantListed: 1},
		{name: "not a one-guest vzdump", upid: "UPID:node1:0019A2F3:0A6B8C21:67F3B2C1:vzdump::felhom-agent@pve!agent:", wantErr: "is not a one-guest vzdump"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var asked []string
			f := newFake(t).on("GET /nodes/node1/storage/usb-backup/content", func(w http.ResponseWriter, r *http.Request) {
				asked = append(asked, r.URL.RawQuery)
				fmt.Fprintf(w, `{"data":[%s]}`, strings.Join(tt.listing, ","))
			})
			upid := cmp.Or(tt.upid, upidWait)
			got, listed, err := fakeClient(t, f).VzdumpBackups(t.Context(), proxmox.MustParseUPID(upid), "usb-backup")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("VzdumpBackups = %q, %v; want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("VzdumpBackups = %q, %v; want %q", got, err, tt.want)
			}
			if len(listed) != tt.wantListed {
				t.Errorf("VzdumpBackups listed %d backups; want the listing whole (%d)", len(listed), tt.wantListed)
			}
			if len(asked) != 1 || asked[0] != "content=backup&vmid=101" {
				t.Errorf("requests %q; want one listing of guest 101's backups", asked)
			}
		})
	}
}

func TestFindStartedTask(t *testing.T) {
	sim := pvesim.New()
	sim.TaskDuration = 10 * time.Millisecond
	c := simClient(t, sim)
	ctx := t.Context()
	before := time.Now().Add(-time.Second)
	upid, err := c.Snapshot(ctx, proxmox.LXC, 101, proxmox.SnapshotOptions{Name: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitTask(ctx, upid, proxmox.WaitOptions{}); err != nil {
		t.Fatal(err)
	}
	// Archived now: the list names its user without the token.
	for _, tt := range []struct {
		name       string
		worker, id string
		since      time.Time
		skip       func(proxmox.UPID) bool
		want       bool
	}{
		{"found", "vzsnapshot", "101", before, nil, true},
		{"other guest", "vzsnapshot", "102", before, nil, false},
		{"other worker", "vzrollback", "101", before, nil, false},
		{"started before since", "vzsnapshot", "101", time.Now().Add(time.Hour), nil, false},
		{"claimed", "vzsnapshot", "101", before, func(u proxmox.UPID) bool { return u == upid }, false},
	} {
		got, ok, err := c.FindStartedTask(ctx, tt.worker, tt.id, tt.since, tt.skip)
		if err != nil || ok != tt.want || (ok && got.UPID != upid) {
			t.Errorf("%s: FindStartedTask = %v, %v, %v; want found %v (%s)", tt.name, got.UPID, ok, err, tt.want, upid)
		}
	}
}
