package pvesim_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
)

// ExampleSim backs up guest 101 on a simulated host: the POST starts a
// vzdump task, the test's clock decides when it ends, and the archive then
// appears on the storage with PVE's name.
func ExampleSim() {
	var now atomic.Int64
	now.Store(time.Date(2026, 11, 20, 3, 0, 1, 0, time.UTC).Unix())
	sim := &pvesim.Sim{Now: func() time.Time { return time.Unix(now.Load(), 0).UTC() }}
	srv, err := sim.Start("127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	call := func(method, path string, params url.Values) (status string, data any) {
		req, _ := http.NewRequest(method, srv.Endpoint+"/api2/json"+path, strings.NewReader(params.Encode()))
		req.Header.Set("Authorization", "PVEAPIToken="+srv.Token)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := srv.Client().Do(req)
		if err != nil {
			return err.Error(), nil
		}
		defer resp.Body.Close()
		var env struct{ Data any }
		_ = json.NewDecoder(resp.Body).Decode(&env)
		return resp.Status, env.Data
	}

	_, upid := call("POST", "/nodes/demo-felhom/vzdump", url.Values{"vmid": {"101"}, "storage": {"usb-backup"}, "compress": {"zstd"}})
	_, st := call("GET", fmt.Sprintf("/nodes/demo-felhom/tasks/%s/status", upid), nil)
	fmt.Println("task:", st.(map[string]any)["status"])

	now.Add(60) // a minute later the task has stopped
	_, st = call("GET", fmt.Sprintf("/nodes/demo-felhom/tasks/%s/status", upid), nil)
	fmt.Println("exit status:", st.(map[string]any)["exitstatus"])
	for _, v := range sim.Volumes("usb-backup") {
		if v.VMID == 101 {
			fmt.Println(v.VolID)
		}
	}

	status, _ := call("POST", "/nodes/demo-felhom/lxc/101/status/start", nil)
	fmt.Println(status)
	// Output:
	// task: running
	// exit status: OK
	// usb-backup:backup/vzdump-lxc-101-2026_11_19-03_00_01.tar.zst
	// usb-backup:backup/vzdump-lxc-101-2026_11_20-03_00_01.tar.zst
	// 500 CT 101 already running
}
