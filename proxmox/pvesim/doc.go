// Package pvesim is a stateful Proxmox VE 8 simulator: an http.Handler
// ([Sim]) that answers the API below /api2/json like a real host for every
// endpoint felhom-agent uses, and a [RootRunner] that answers the fenced
// root commands (pct create, mount, smartctl, sensors). It is as strict as
// a host: parameters are validated against the official schema (embedded
// from the PVE API viewer data), privileges are checked per ACL path, and
// errors carry PVE's exact texts, status codes and reason phrases.
//
// # For tests
//
//	sim := &pvesim.Sim{TaskDuration: time.Millisecond}
//	sim.OnUnmodeled = func(r *http.Request) { t.Errorf("unmodelled %s %s", r.Method, r.URL) }
//	srv, err := sim.Start("127.0.0.1:0") // or httptest.NewTLSServer(sim)
//	if err != nil { t.Fatal(err) }
//	t.Cleanup(func() { srv.Close() })
//	cfg, err := srv.ClientConfig() // srv.Endpoint, srv.Node, srv.Token, srv.Fingerprint pinned
//	c, err := proxmox.New(cfg)     // or trust srv.CAPEM instead of the pin
//	// shape the world with sim.AddGuest,
//	// sim.FillStorage, sim.DenyAtTaskTime, sim.FailNextTask, sim.AddFault;
//	// assert with sim.Guest, sim.Volumes, sim.Tasks, sim.Mutations.
//
// Time is the Now knob: a test that sets Now to a fake clock decides when
// tasks stop by advancing it (tasks stop lazily, when anyone looks after
// their end), so no test has to sleep. In a testing/synctest bubble, leave
// Now unset and serve the Sim with PipeTransport: its tasks then run on the
// bubble's fake time.
//
// # For operators
//
// `felhom-agent sim` serves the default world with Start and prints its
// Info (endpoint, token, fingerprint); faults come from the command line in
// the ParseFault form ("latency:200ms", "503:GET:/nodes/*/status:count=3",
// "taskfail:vzdump:101:disk on fire", "full:usb-backup", ...).
//
// # The default world
//
// Node demo-felhom (PVE 8.2.4). Containers: 9999 "selftest" (running), 9000
// "golden" (a stopped template whose archive is on local), 101 "web" and
// 102 "db" (running, each with one archive on usb-backup). VMs: 200 "app"
// (running) and 201 "build" (stopped), each with one archive on
// usb-backup. Storages: local (dir /var/lib/vz: backup, iso, vztmpl, with
// the Debian 12 template), local-lvm (lvmthin: images, rootdir), usb-backup
// (dir /mnt/usb-backup: backup, prune-backups keep-last=7), pbs-backup (a
// Proxmox Backup Server datastore: a verified, protected snapshot of 101
// and a verified one of 200, older than the usb-backup archives;
// prune-backups keep-daily=7,keep-weekly=4). A ZFS pool (zfspool) is
// added with AddStorage. Token felhom-agent@pve!agent with the
// FelhomAgent role on /. Disks /dev/sda (SSD) and /dev/sdb (USB, partition
// sdb1 with DefaultUSBUUID mounted at /mnt/usb-backup). Sensors coretemp
// and nvme.
//
// # Where PVE checks, and so the simulator
//
// At the request: authentication (401 with an empty body: "No ticket"
// without credentials, "invalid token value!" for a wrong secret, "no
// such token 'ID' for user 'USER@REALM'" for an unknown token — see
// tokens.go — after AuthFailureDelay); the body (506 "upload
// 'Content-Type 'text/plain' not implemented" for a type other than form
// or JSON, 501 "Unexpected content for method 'GET'"); the endpoint's
// declared permission check (403 "Permission check failed (PATH, PRIV)");
// "no such cluster node 'x'" (500); the schema (400 "Parameter
// verification failed." with per-parameter errors, "type check ('string')
// failed - got ARRAY" for a key sent twice); then the handler's own
// checks: "CT 101 already running" / "CT 101 not running" for a
// container's start/stop, "CT is locked (backup)" / "VM is locked (backup)"
// and "unable to destroy CT 101 - container is running" / "VM 200 is
// running - destroy failed" for config changes and destroy, "CT 101
// already exists on node 'demo-felhom'" (or "VM 200 ...", naming the kind
// that holds the id) for create and restore, "Configuration file
// 'nodes/demo-felhom/lxc/101.conf' does not exist" (qemu-server/200.conf
// for a VM) for a missing guest — a VM is no container to the lxc
// endpoints and the other way round.
//
// In the worker (the POST returns a UPID; the task stops with the error).
// As the worker starts, so the task fails at once: snapshot, rollback and
// snapshot delete ("snapshot name 'x' already used", "snapshot 'x' does
// not exist", locks) and the lock checks of start/stop/shutdown. When the
// job reaches each guest: vzdump's per-guest failures (the job then ends "job errors"; a full
// storage fails the archive write with "No space left on device" in the
// log), and every DenyAtTaskTime rule. Workers check: vzdump VM.Backup on
// each /vms/VMID (skipped guests with all=1) and Datastore.AllocateSpace on
// the storage; vzcreate and vzrestore VM.Allocate on the guest and
// Datastore.AllocateSpace on the target storage; vzstart, vzstop and
// vzshutdown VM.PowerMgmt; vzsnapshot and vzdelsnapshot VM.Snapshot;
// vzrollback VM.Snapshot.Rollback; vzdestroy VM.Allocate; imgdel
// Datastore.Allocate on the storage (Datastore.AllocateSpace and VM.Backup
// for a backup).
//
// A task holding a guest lock (snapshot, rollback, snapshot-delete, create,
// destroyed) holds it from its request until it stops; a vzdump holds
// "backup" on each guest only while it backs that guest up. Meanwhile a
// config change or destroy answers 500 "CT is locked (backup)", and a
// worker of that guest fails at once with it (see locks.go for the PVE
// sources); a second vzdump waits for the node's global vzdump lock.
//
// VMs (qemu.go) follow qemu-server: their workers are qmstart, qmstop,
// qmshutdown, qmreboot, qmsnapshot, qmrollback, qmdelsnapshot, qmdestroy,
// qmrestore and qmconfig (a config POST forks it; PUT is synchronous); a
// VM's start checks "already running" as its worker starts, and stopping a
// stopped VM succeeds doing nothing; a vmstate snapshot of a running VM
// saves its RAM and a rollback to it resumes the VM. vzdump writes
// vzdump-qemu-VMID-STAMP.vma.zst for a VM, and on a pbs storage snapshots
// STORAGE:backup/{ct|vm}/VMID/TIME (UTC) with PBS's log lines and format
// pbs-ct/pbs-vm; content lists their verification state and protected
// flag, and pruning never removes a protected backup. On a zfspool,
// container volumes are subvol-VMID-disk-N datasets and a rollback to a
// snapshot that is not the most recent is refused ("can't rollback, 'x' is
// not most recent snapshot on 'local-zfs:subvol-150-disk-0'").
//
// Deliberate simplifications: one node; VMs are only created by restore
// (a create without archive is refused); pending config changes (QEMU's
// and containers') apply at once, as hot-plug would; PBS verify jobs are
// set with SetVerification, not run; storage space is accounted for
// archives and guest disks only; in a cluster world a storage's size is
// the same on every node (its use is each node's own on a storage without
// shared=1, see cluster.go).
package pvesim
