package pvetest

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// wireCases check what a host does on the wire, seen through
// World.Endpoint with a hand-written HTTP client: paging parameters the
// Client does not send, failed authentication, request bodies PVE refuses,
// and the read endpoints third-party clients call. Every rule names the
// PVE source it was read from.
var wireCases = []testCase{
	{
		name: "task-log-limit-0",
		rule: "GET .../tasks/{upid}/log?limit=0 returns the whole log, total being its line count " +
			"(pve-common src/PVE/Tools.pm dump_logfile_by_filehandle: read_until_end when limit is 0, since commit f0c1b0c); " +
			"without limit PVE reads 50 lines (pve-manager PVE/API2/Tasks.pm read_task_log)",
		hooks: []string{"Endpoint"},
		run: func(t *testing.T, s *suite) {
			if s.snapTask.IsZero() {
				t.Skip("needs the task of case snapshot")
			}
			want, err := s.c.TaskLogTail(s.ctx, s.snapTask, 100_000)
			if err != nil {
				t.Fatalf("TaskLogTail: %v", err)
			}
			r := s.raw(t).ok("GET", "/nodes/"+s.node+"/tasks/"+s.snapTask.String()+"/log", url.Values{"limit": {"0"}})
			lines := r.list()
			if len(lines) != len(want) || fmt.Sprint(r.env["total"]) != fmt.Sprint(len(want)) {
				t.Fatalf("log?limit=0 = %d lines, total %v; want all %d", len(lines), r.env["total"], len(want))
			}
			for i, l := range lines {
				if l["t"] != want[i] || fmt.Sprint(l["n"]) != fmt.Sprint(i+1) {
					t.Errorf("line %d = %v; want n %d, t %q", i, l, i+1, want[i])
				}
			}
		},
	},
	{
		name: "task-log-no-content",
		rule: "the log of a running task that has written nothing yet reads [{\"n\":1,\"t\":\"no content\"}] with total 1 " +
			"(pve-common src/PVE/Tools.pm dump_logfile_by_filehandle, the ExtJS guaranteeRange hack)",
		hooks: []string{"Endpoint", "HoldTasks"},
		run: func(t *testing.T, s *suite) {
			s.w.HoldTasks(t)
			upid, err := s.c.Start(s.ctx, proxmox.LXC, s.w.Stopped)
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			defer func() {
				if err := s.c.StopTask(s.ctx, upid); err != nil {
					t.Errorf("StopTask: %v", err)
				}
				_, _ = s.wait(upid)
			}()
			r := s.raw(t).ok("GET", "/nodes/"+s.node+"/tasks/"+upid.String()+"/log", nil)
			if got := string(r.raw); got != `{"data":[{"n":1,"t":"no content"}],"total":1}` {
				t.Errorf("log of a running vzstart = %s; want PVE's no-content line", got)
			}
		},
	},
	{
		name: "auth-401",
		rule: "a failed authentication is a 401 whose reason phrase is the cause and whose body is empty (pve-http-server " +
			"src/PVE/APIServer/AnyEvent.pm: HTTP::Response with the error, no content): \"No ticket\" without credentials " +
			"(pve-manager PVE/HTTPServer.pm auth_handler), \"invalid token value!\" for a wrong secret and \"no such token " +
			"'ID' for user 'USER@REALM'\" for an unknown token (pve-access-control src/PVE/AccessControl.pm verify_token); " +
			"PVE 9.1.5+ says \"Authentication failed!\" for both (pve-manager 26c10a2e); pveproxy answers after " +
			"World.AuthFailureDelay (3 s on a real host)",
		hooks: []string{"Endpoint"},
		run: func(t *testing.T, s *suite) {
			a := s.raw(t)
			id, _, _ := strings.Cut(a.e.Token, "=")
			user, _, _ := strings.Cut(id, "!")
			for _, tc := range []struct {
				what, auth string
				reasons    []string
			}{
				{"no credentials", "", []string{"No ticket"}},
				{"a wrong secret", "PVEAPIToken=" + id + "=felhom-conformance-wrong-secret", []string{"invalid token value!", "Authentication failed!"}},
				{"an unknown token", "PVEAPIToken=" + user + "!felhomnosuchtoken=x", []string{
					fmt.Sprintf("no such token 'felhomnosuchtoken' for user '%s'", user), "Authentication failed!"}},
			} {
				r, err := a.send("GET", "/version", "", nil, tc.auth)
				if err != nil {
					t.Fatalf("GET /version with %s: %v", tc.what, err)
				}
				if r.status != http.StatusUnauthorized || !slices.Contains(tc.reasons, r.reason) {
					t.Errorf("GET /version with %s = %d %q; want 401 with reason %q", tc.what, r.status, r.reason, tc.reasons[0])
				}
				if len(r.raw) != 0 {
					t.Errorf("GET /version with %s: body %q; want none (no formatter runs for a failed authentication)", tc.what, r.raw)
				}
				if d := s.w.AuthFailureDelay; d > 0 && r.took < d {
					t.Errorf("GET /version with %s answered after %v; pveproxy waits %v before a 401", tc.what, r.took, d)
				}
			}
		},
	},
	{
		name: "body-text-plain",
		rule: "a POST or PUT body that is neither form-encoded nor JSON is refused before any handler runs: 506 " +
			"\"upload 'Content-Type 'text/plain' not implemented\" (pve-http-server src/PVE/APIServer/AnyEvent.pm " +
			"authenticate_and_handle_request), no JSON (the message as a plain body since libpve-http-server-perl 5.2.0)",
		hooks: []string{"Endpoint"},
		run: func(t *testing.T, s *suite) {
			a := s.raw(t)
			path := fmt.Sprintf("/nodes/%s/lxc/%d/snapshot", s.node, s.w.Stopped)
			name := s.snapName + "tp"
			r, err := a.send("POST", path, "text/plain", []byte("snapname="+name), "PVEAPIToken="+a.e.Token)
			if err != nil {
				t.Fatalf("POST %s as text/plain: %v", path, err)
			}
			want := "upload 'Content-Type 'text/plain' not implemented"
			if r.status != 506 || r.reason != want {
				t.Errorf("POST as text/plain = %d %q %q; want 506 %q", r.status, r.reason, r.raw, want)
			}
			if body := string(r.raw); body != "" && body != want {
				t.Errorf("POST as text/plain: body %q; want none or the message", body)
			}
			if strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
				t.Errorf("POST as text/plain answered Content-Type %q; pveproxy's own errors are not JSON", r.header.Get("Content-Type"))
			}
			snaps := a.ok("GET", path, nil).list()
			for _, sn := range snaps {
				if sn["name"] == name {
					t.Errorf("the text/plain POST made snapshot %s", name)
				}
			}
		},
	},
	{
		name: "body-repeated-key",
		rule: "a form key sent twice arrives as a list (pve-http-server decode_urlencoded) and fails a scalar parameter's " +
			"type check: 400, errors {\"description\": \"type check ('string') failed - got ARRAY\"} (pve-common " +
			"src/PVE/JSONSchema.pm check_type); nothing changes",
		hooks: []string{"Endpoint"},
		run: func(t *testing.T, s *suite) {
			a := s.raw(t)
			path := fmt.Sprintf("/nodes/%s/lxc/%d/config", s.node, s.w.Stopped)
			r := a.fails("PUT", path, url.Values{"description": {"one", "two"}}, 400, "Parameter verification failed.")
			if errs, _ := r.env["errors"].(map[string]any); errs["description"] != "type check ('string') failed - got ARRAY" {
				t.Errorf("errors = %v; want description's ARRAY type check", r.env["errors"])
			}
			if d, _ := a.ok("GET", path, nil).object()["description"].(string); strings.Contains(d, "one") || strings.Contains(d, "two") {
				t.Errorf("description after the refused PUT = %q", d)
			}
		},
	},
	{
		name: "cluster-status",
		rule: "GET /cluster/status lists this node as {type node, id node/NAME, name, local 1, online 1}; a node in no " +
			"cluster lists only itself, with nodeid 0 (pve-manager PVE/API2/Cluster.pm get_status, the fake local entry)",
		hooks: []string{"Endpoint"},
		run: func(t *testing.T, s *suite) {
			list := s.raw(t).ok("GET", "/cluster/status", nil).list()
			var self map[string]any
			clustered := false
			for _, e := range list {
				switch e["type"] {
				case "cluster":
					clustered = true
				case "node":
					if e["name"] == s.node {
						self = e
					}
				}
			}
			if self == nil || self["id"] != "node/"+s.node || fmt.Sprint(self["local"]) != "1" || fmt.Sprint(self["online"]) != "1" {
				t.Fatalf("GET /cluster/status = %v; want node %s, local and online", list, s.node)
			}
			if !clustered && (len(list) != 1 || fmt.Sprint(self["nodeid"]) != "0") {
				t.Errorf("GET /cluster/status without a cluster = %v; want only this node, nodeid 0", list)
			}
		},
	},
	{
		name: "storage-config-and-status",
		rule: "GET /storage/{storage} is the storage's section with its id and digest (pve-storage PVE/API2/Storage/Config.pm " +
			"read); GET /nodes/{node}/storage/{storage}/status is its storage_info entry, and 400 {storage: \"No such " +
			"storage.\"} for an unknown id (PVE/API2/Storage/Status.pm read_status)",
		hooks: []string{"Endpoint"},
		run: func(t *testing.T, s *suite) {
			a := s.raw(t)
			cfg := a.ok("GET", "/storage/"+s.w.BackupStorage, nil).object()
			if cfg["storage"] != s.w.BackupStorage || cfg["type"] == nil || !strings.Contains(fmt.Sprint(cfg["content"]), "backup") || cfg["digest"] == nil {
				t.Errorf("GET /storage/%s = %v; want storage, type, content with backup, digest", s.w.BackupStorage, cfg)
			}
			st := a.ok("GET", "/nodes/"+s.node+"/storage/"+s.w.BackupStorage+"/status", nil).object()
			if fmt.Sprint(st["active"]) != "1" || fmt.Sprint(st["enabled"]) != "1" || st["total"] == nil || st["type"] != cfg["type"] {
				t.Errorf("storage status = %v; want active, enabled, total and the type %v", st, cfg["type"])
			}
			r := a.fails("GET", "/nodes/"+s.node+"/storage/felhomnosuchstore/status", nil, 400, "Parameter verification failed.")
			if errs, _ := r.env["errors"].(map[string]any); errs["storage"] != "No such storage." {
				t.Errorf("errors = %v; want storage: No such storage.", r.env["errors"])
			}
		},
	},
	{
		name: "snapshot-config",
		rule: "GET .../lxc/{vmid}/snapshot/{snapname}/config is the snapshot's section: the guest's keys then, snaptime and " +
			"its description; an unknown name dies \"snapshot 'x' does not exist\" (pve-container " +
			"src/PVE/API2/LXC/Snapshot.pm get_snapshot_config)",
		hooks: []string{"Endpoint"},
		run: func(t *testing.T, s *suite) {
			name := s.snapName + "cf"
			upid, err := s.c.Snapshot(s.ctx, proxmox.LXC, s.w.Stopped, proxmox.SnapshotOptions{Name: name, Description: "snapshot config"})
			s.mustDone(t, "Snapshot", upid, err)
			defer func() {
				upid, err := s.c.DeleteSnapshot(s.ctx, proxmox.LXC, s.w.Stopped, name)
				s.mustDone(t, "DeleteSnapshot", upid, err)
			}()
			a := s.raw(t)
			base := fmt.Sprintf("/nodes/%s/lxc/%d/snapshot/", s.node, s.w.Stopped)
			conf := a.ok("GET", base+name+"/config", nil).object()
			if conf["hostname"] != s.stoppedConfig.Hostname || conf["snaptime"] == nil || conf["description"] != "snapshot config\n" {
				t.Errorf("snapshot config = %v; want hostname %q, snaptime, description", conf, s.stoppedConfig.Hostname)
			}
			a.fails("GET", base+"felhomnosuchsnap/config", nil, 500, "snapshot 'felhomnosuchsnap' does not exist")
		},
	},
	{
		name: "access-reads",
		rule: "a token with Sys.Audit (or User.Modify) on /access/groups lists every user, its own included, with userid " +
			"and enable (pve-access-control src/PVE/API2/User.pm index); GET /access/groups is a list; GET /access/domains " +
			"answers without credentials and lists the built-in realms pam and pve (src/PVE/API2/Domains.pm index; " +
			"pve-manager PVE/HTTPServer.pm auth_handler exempts it)",
		hooks: []string{"Endpoint"},
		run: func(t *testing.T, s *suite) {
			a := s.raw(t)
			id, _, _ := strings.Cut(a.e.Token, "!")
			users := a.ok("GET", "/access/users", nil).list()
			if !slices.ContainsFunc(users, func(u map[string]any) bool { return u["userid"] == id }) {
				t.Errorf("GET /access/users = %v; want the token's user %s", users, id)
			}
			if r := a.ok("GET", "/access/groups", nil); r.data == nil {
				t.Errorf("GET /access/groups = %s; want a list", r.raw)
			}
			r, err := a.send("GET", "/access/domains", "", nil, "")
			if err != nil || r.status != 200 {
				t.Fatalf("GET /access/domains without credentials = %+v, %v; want 200", r, err)
			}
			var realms []string
			for _, d := range r.list() {
				realms = append(realms, fmt.Sprint(d["realm"]))
			}
			if !slices.Contains(realms, "pam") || !slices.Contains(realms, "pve") {
				t.Errorf("realms = %q; want pam and pve", realms)
			}
		},
	},
	{
		name: "content-and-disk-shapes",
		rule: "guest disks in a storage's content carry ctime (lv_time on LVM-thin: pve-storage src/PVE/Storage/LvmThinPlugin.pm " +
			"list_images; none on ZFS); disks/list?include-partitions=1 marks what is mounted with mounted 1 and leaves the key " +
			"out otherwise (src/PVE/Storage/Diskmanage.pm get_disks)",
		hooks: []string{"Endpoint"},
		run: func(t *testing.T, s *suite) {
			a := s.raw(t)
			cfg := a.ok("GET", "/storage/"+s.w.GuestStorage, nil).object()
			disks := a.ok("GET", "/nodes/"+s.node+"/storage/"+s.w.GuestStorage+"/content", url.Values{"vmid": {itoa(s.w.Stopped)}}).list()
			if len(disks) == 0 {
				t.Errorf("content of %s for guest %d is empty; want its disk", s.w.GuestStorage, s.w.Stopped)
			}
			for _, d := range disks {
				ct, _ := d["ctime"].(float64)
				if cfg["type"] != "zfspool" && ct <= 0 {
					t.Errorf("disk %v on %v storage %s has no ctime", d, cfg["type"], s.w.GuestStorage)
				}
			}
			for _, d := range a.ok("GET", "/nodes/"+s.node+"/disks/list", url.Values{"include-partitions": {"1"}}).list() {
				if m, has := d["mounted"]; has && fmt.Sprint(m) != "1" {
					t.Errorf("disk %v: mounted = %v; PVE sets it to 1 or leaves it out", d["devpath"], m)
				}
			}
		},
	},
	{
		name: "volume-info-path",
		rule: "GET .../content/{volume} gives PVE::Storage::path: a directory storage's backup under its dump/ subdirectory " +
			"(pve-storage src/PVE/Storage/Plugin.pm filesystem_path, get_subdir), a PBS snapshot as pbs://USER@SERVER:DATASTORE/NAME " +
			"(PBSPlugin.pm path, pve-common PVE::PBSClient get_repository), an LVM-thin disk as /dev/VG/NAME (LvmThinPlugin.pm), " +
			"a ZFS zvol as /dev/zvol/POOL/NAME and a subvolume as /POOL/NAME (ZFSPoolPlugin.pm path)",
		hooks: []string{"Endpoint"},
		run: func(t *testing.T, s *suite) {
			a := s.raw(t)
			checked := 0
			for _, cfg := range a.ok("GET", "/storage", nil).list() {
				sid, _ := cfg["storage"].(string)
				typ, _ := cfg["type"].(string)
				var want func(name string) string
				switch typ {
				case "dir":
					want = func(name string) string {
						if f, ok := strings.CutPrefix(name, "backup/"); ok {
							return fmt.Sprint(cfg["path"]) + "/dump/" + f
						}
						return ""
					}
				case "pbs":
					user, _ := cfg["username"].(string)
					if user == "" {
						user = "root@pam"
					}
					want = func(name string) string {
						return fmt.Sprintf("pbs://%s@%s:%s/%s", user, cfg["server"], cfg["datastore"], strings.TrimPrefix(name, "backup/"))
					}
				case "lvmthin":
					want = func(name string) string { return fmt.Sprintf("/dev/%s/%s", cfg["vgname"], name) }
				case "zfspool":
					want = func(name string) string {
						if strings.HasPrefix(name, "subvol-") || strings.HasPrefix(name, "basevol-") {
							return fmt.Sprintf("/%s/%s", cfg["pool"], name)
						}
						return fmt.Sprintf("/dev/zvol/%s/%s", cfg["pool"], name)
					}
				default:
					continue
				}
				st := a.ok("GET", "/nodes/"+s.node+"/storage/"+sid+"/status", nil).object()
				if fmt.Sprint(st["active"]) != "1" {
					continue
				}
				for _, v := range a.ok("GET", "/nodes/"+s.node+"/storage/"+sid+"/content", nil).list() {
					volid, _ := v["volid"].(string)
					_, name, _ := strings.Cut(volid, ":")
					path := want(name)
					if path == "" {
						continue
					}
					info := a.ok("GET", "/nodes/"+s.node+"/storage/"+sid+"/content/"+volid, nil).object()
					if info["path"] != path || info["format"] != v["format"] {
						t.Errorf("%s storage %s: info of %s = %v; want path %q, format %v", typ, sid, volid, info, path, v["format"])
					}
					checked++
					break
				}
			}
			if checked == 0 {
				t.Error("no volume on a dir, pbs, lvmthin or zfspool storage to check")
			}
		},
	},
	{
		name: "proxy-error-595",
		rule: "when pveproxy cannot reach the node it proxies to it relays AnyEvent::HTTP's 595 with its reason phrase " +
			"and no JSON body (pve-http-server src/PVE/APIServer/AnyEvent.pm proxy_request)",
		hooks: []string{"Endpoint", "ProxyError"},
		run: func(t *testing.T, s *suite) {
			path := "/nodes/" + s.node + "/status"
			s.w.ProxyError(t, "GET", path)
			r, err := s.raw(t).send("GET", path, "", nil, "PVEAPIToken="+s.w.Endpoint.Token)
			if err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
			if r.status != 595 || r.reason == "" || len(r.raw) != 0 || r.header.Get("Content-Type") != "" {
				t.Errorf("GET %s = %d %q %q (type %q); want 595 with a reason and no body", path, r.status, r.reason, r.raw, r.header.Get("Content-Type"))
			}
		},
	},
}

// raw is a hand-written client of World.Endpoint for the running case.
func (s *suite) raw(t *testing.T) *rawAPI {
	return &rawAPI{t: t, e: *s.w.Endpoint}
}
