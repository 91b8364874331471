package proxmox_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// A backup: start vzdump, wait for its task, and find the archive it wrote.
// The host here is a stand-in that finishes the task at once.
func ExampleClient_WaitTask() {
	const upid = "UPID:pve1:0019A2F3:0A6B8C21:67F3B2C1:vzdump:101:felhom-agent@pve!agent:"
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api2/json/nodes/pve1/vzdump", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"data":%q}`, upid)
	})
	mux.HandleFunc("GET /api2/json/nodes/pve1/tasks/{upid}/status", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"data":{"status":"stopped","exitstatus":"WARNINGS: 1"}}`)
	})
	mux.HandleFunc("GET /api2/json/nodes/pve1/tasks/{upid}/log", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"data":[{"n":1,"t":"INFO: creating vzdump archive '/mnt/usb/dump/vzdump-lxc-101-2026_11_20-03_00_01.tar.zst'"},{"n":2,"t":"TASK WARNINGS: 1"}],"total":2}`)
	})
	ts := httptest.NewTLSServer(mux)
	defer ts.Close()

	token, _ := proxmox.ParseToken("felhom-agent@pve!agent=5ec2e7a1-d00d-4bad-beef-0123456789ab")
	c, err := proxmox.New(proxmox.Config{Endpoint: ts.URL, Node: "pve1", Token: token}, proxmox.WithHTTPClient(ts.Client()))
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	task, err := c.Vzdump(ctx, proxmox.VzdumpOptions{VMIDs: []int{101}, Storage: "usb-backup"})
	if err != nil {
		fmt.Println(err)
		return
	}
	st, err := c.WaitTask(ctx, task, proxmox.WaitOptions{})
	if err != nil {
		fmt.Println(err) // a *proxmox.TaskError, with the log tail
		return
	}
	volid, err := c.VzdumpArchive(ctx, task, "usb-backup")
	fmt.Println(st.ExitStatus, st.Warnings())
	fmt.Println(volid, err)
	// Output:
	// WARNINGS: 1 1
	// usb-backup:backup/vzdump-lxc-101-2026_11_20-03_00_01.tar.zst <nil>
}
