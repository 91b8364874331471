"""Drive a Proxmox VE host with proxmoxer, as third-party automation does.

Run by pvetest.Proxmoxer with a JSON object as the first line of stdin (host,
port, cafile, node, token, running, stopped, scratch, backup_storage,
guest_storage; guests: one {kind, stopped} per guest kind the snapshot steps run
on; hooks: the situations the test can make on request; cluster: null outside a
cluster, else {other, other_guest, ha_guest, operator_token, migrate_vm,
settle}). Prints one line per step and exits non-zero at the first answer a real
host would not give. Whatever it creates or changes it puts back.

A hook is asked for by printing "HOOK VERB [ARG]" and reading the reply line
("ok" or "error: WHY"); the scope it opens lasts until "HOOK end VERB [ARG]"
(see pvetest's flowhooks.go): "hold" keeps running tasks running, "down NODE"
takes a node of the cluster down.
"""

import contextlib
import json
import re
import sys
import time

from proxmoxer import ProxmoxAPI
from proxmoxer.core import ResourceException

UPID = re.compile(r"^UPID:[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?:[0-9A-Fa-f]{8}:[0-9A-Fa-f]{8,9}:"
                  r"[0-9A-Fa-f]{8}:[^:\s]+:[^:\s]*:[^:\s]+:$")
ARCHIVE = re.compile(r"^[^:]+:backup/vzdump-lxc-(\d+)-\d{4}_\d{2}_\d{2}-\d{2}_\d{2}_\d{2}\.tar\.zst$")


class Mismatch(Exception):
    pass


def ask(req):
    """Ask the test for hook req and read its answer."""
    print("HOOK " + req, flush=True)
    reply = sys.stdin.readline().strip()
    expect(reply == "ok", "hook %s: %r" % (req, reply))


@contextlib.contextmanager
def hook(*request):
    """Hold the test's hook scope VERB [ARG] open for the with block."""
    req = " ".join(str(r) for r in request)
    ask(req)
    try:
        yield
    finally:
        ask("end " + req)


def refused(call, status, content, errors=None):
    """call() must raise proxmoxer's ResourceException with status, the
    HTTP reason phrase content and, when given, the errors object (which
    proxmoxer 1.x reads from the body's data, null in PVE's error bodies,
    so it has none; later versions read the body's errors)."""
    try:
        call()
    except ResourceException as e:
        expect(e.status_code == status and e.content == content and (errors is None or e.errors in (None, errors)),
               "refusal %d %r %r, want %d %r %r" % (e.status_code, e.content, e.errors, status, content, errors))
        return e
    raise Mismatch("no refusal, want %d %r" % (status, content))


def expect(cond, what):
    if not cond:
        raise Mismatch(what)


def guest_snapshots(node, guest, snap, wait):
    """Snapshot a stopped guest of guest["kind"] (lxc, qemu), read the
    snapshot's config, roll back and delete it."""
    api = getattr(node, guest["kind"])(guest["stopped"])
    wait(api.snapshot.post(snapname=snap, description="proxmoxer"))
    names = [s["name"] for s in api.snapshot.get()]
    expect(snap in names and "current" in names, "snapshot list %r" % (names,))
    conf = api.snapshot(snap).config.get()
    expect(conf.get("description") == "proxmoxer\n" and "snaptime" in conf, "snapshot config %r" % (conf,))
    wait(api.snapshot(snap).rollback.post())
    wait(api.snapshot(snap).delete())
    expect(snap not in [s["name"] for s in api.snapshot.get()], "snapshot not deleted")


def volume_notes(store, volid, before):
    """PUT notes on a backup volume, read them back whole from its info and
    as their first line in the content listing, and put before back."""
    text = "proxmoxer notes\nsecond line"
    expect(store.content(volid).put(notes=text) is None, "notes PUT did not answer null")
    got = store.content(volid).get()
    expect(got.get("notes") == text and got.get("protected") in (0, 1), "volume info after notes %r" % (got,))
    listed = [v for v in store.content.get(content="backup") if v["volid"] == volid]
    expect(len(listed) == 1 and listed[0].get("notes") == "proxmoxer notes", "listing shows notes %r" % (listed,))
    store.content(volid).put(notes=before)
    got = store.content(volid).get().get("notes", "")
    expect(got == before, "notes put back %r, want %r" % (got, before))


def cluster_steps(px, cfg, wait, step):
    """What a node of a cluster answers about the others, migrations, an
    HA-managed guest and a node that is down."""
    cl, here = cfg["cluster"], cfg["node"]
    other = cl["other"]
    status = px.cluster.status.get()
    head = [e for e in status if e["type"] == "cluster"]
    members = {e["name"]: e for e in status if e["type"] == "node"}
    expect(len(head) == 1 and head[0]["quorate"] == 1 and head[0]["nodes"] == len(members) >= 2,
           "cluster status %r" % (status,))
    expect(members[here]["local"] == 1 and members[other]["online"] == 1 and members[other]["local"] == 0
           and all(m["nodeid"] >= 1 and m["ip"] for m in members.values()), "cluster members %r" % (members,))
    step("cluster status: %s, members %s" % (head[0]["name"], ", ".join(sorted(members))))

    vms = px.cluster.resources.get(type="vm")
    by_id = {r["vmid"]: r for r in vms}
    expect(all(r["type"] in ("lxc", "qemu") and r["id"] == "%s/%d" % (r["type"], r["vmid"]) for r in vms),
           "resources of type vm %r" % (vms,))
    og = by_id.get(cl["other_guest"])
    expect(og and og["node"] == other and og["type"] == "lxc", "other node's guest %r" % (og,))
    nextid = int(px.cluster.nextid.get())
    expect(nextid not in by_id, "nextid %d is taken" % nextid)
    refused(lambda: px.cluster.nextid.get(vmid=cl["other_guest"]), 400, "Parameter verification failed.",
            {"vmid": "VM %d already exists" % cl["other_guest"]})
    refused(lambda: px.nodes(here).lxc(cl["other_guest"]).status.current.get(), 500,
            "Configuration file 'nodes/%s/lxc/%d.conf' does not exist" % (here, cl["other_guest"]))
    expect(px.nodes(other).lxc(cl["other_guest"]).status.current.get()["vmid"] == cl["other_guest"],
           "the other node's path does not reach its guest")
    step("cluster resources, nextid, another node's guest")

    local_usage_per_node(px, cfg, wait, step)

    if cl.get("ha_guest"):
        ha_power(px, cl, wait)
        step("HA guest %d: hastop and hastart, state changed later" % cl["ha_guest"])

    if cl.get("operator_token"):
        user, rest = cl["operator_token"].split("!", 1)
        name, value = rest.split("=", 1)
        op = ProxmoxAPI(cfg["host"], port=cfg["port"], user=user, token_name=name, token_value=value,
                        verify_ssl=cfg["cafile"], timeout=30)
        migrate_ct(px, op, cfg, wait, step)
        if cl.get("migrate_vm"):
            migrate_vm(px, op, cfg, wait)
            step("qemu %d: online migration to %s and back" % (cl["migrate_vm"], other))
    else:
        step("migration steps skipped: no operator token")

    if "down" in cfg["hooks"]:
        node_down(px, cfg, members)
        step("%s down: 595 No route to host, then no quorum" % other)
    else:
        step("node-down steps skipped: no hook")


def local_usage_per_node(px, cfg, wait, step):
    """A storage without shared=1 is each node's own disk (pve-storage
    Storage.pm storage_info runs on the node asked): a backup to it on the
    other node grows that node's usage, not this one's."""
    here, other, guest = cfg["node"], cfg["cluster"]["other"], cfg["cluster"]["other_guest"]
    sid = cfg["backup_storage"]
    if px.storage(sid).get().get("shared"):
        step("per-node usage skipped: %s is shared" % sid)
        return
    used = lambda n: px.nodes(n).storage(sid).status.get()["used"]
    content = px.nodes(other).storage(sid).content
    had = {v["volid"] for v in content.get(content="backup", vmid=guest)}
    here0, other0 = used(here), used(other)
    wait(px.nodes(other).vzdump.post(vmid=guest, storage=sid, mode="snapshot", compress="zstd", remove=0))
    new = [v for v in content.get(content="backup", vmid=guest) if v["volid"] not in had]
    expect(len(new) == 1 and new[0]["size"] > 0, "vzdump on %s made %r" % (other, new))
    size = new[0]["size"]
    grew, moved = used(other) - other0, abs(used(here) - here0)
    try:
        expect(grew >= size / 2, "%s's %s grew %d for an archive of %d" % (other, sid, grew, size))
        expect(moved < size / 2, "%s's %s moved %d for an archive on %s" % (here, sid, moved, other))
    finally:
        wait(content(new[0]["volid"]).delete())
    step("%s is per node: a backup on %s grew its usage by %d, %s's moved %d" % (sid, other, grew, here, moved))


def settle(what, cond, limit):
    deadline = time.monotonic() + limit
    while not cond():
        expect(time.monotonic() < deadline, "%s: not after %ds" % (what, limit))
        time.sleep(0.05)


def ha_power(px, cl, wait):
    """Stop and start an HA-managed container where cluster/resources says
    it is: hastop/hastart tasks that only ask the HA stack, then the state
    follows."""
    vmid = cl["ha_guest"]
    res = [r for r in px.cluster.resources.get(type="vm") if r["vmid"] == vmid]
    expect(len(res) == 1 and res[0].get("hastate") == "started", "HA guest resource %r" % (res,))
    ct = px.nodes(res[0]["node"]).lxc(vmid)
    st = ct.status.current.get()
    expect(st["status"] == "running" and st["ha"]["managed"] == 1, "HA guest status %r" % (st,))
    for action, typ, want, hastate in (("stop", "hastop", "stopped", "stopped"), ("start", "hastart", "running", "started")):
        upid = getattr(ct.status, action).post()
        expect(":%s:%d:" % (typ, vmid) in upid, "%s of an HA guest answered %s, want a %s task" % (action, upid, typ))
        wait(upid)
        log = [l["t"] for l in px.nodes(res[0]["node"]).tasks(upid).log.get()]
        word = "stop" if action == "stop" else "start"
        expect("Requesting HA %s for CT %d" % (word, vmid) in log, "%s log %r" % (typ, log))
        settle("HA %s of %d" % (action, vmid), lambda: ct.status.current.get()["status"] == want, cl.get("settle", 120))
        got = [r.get("hastate") for r in px.cluster.resources.get(type="vm") if r["vmid"] == vmid]
        expect(got == [hastate], "hastate after %s: %r" % (typ, got))


def migrate_ct(px, op, cfg, wait, step):
    """Refusals, then World.Running to the other node in restart mode (held
    running, when the test can hold tasks, to read the live log page by
    page and see the lock) and back."""
    here, other, vmid = cfg["node"], cfg["cluster"]["other"], cfg["running"]
    src = op.nodes(here).lxc(vmid)
    refused(lambda: src.migrate.post(target=here, restart=1), 400, "Parameter verification failed.",
            {"target": "target is local node."})
    refused(lambda: src.migrate.post(target=other), 500, "can't migrate running container without --online or --restart")
    refused(lambda: src.migrate.post(target="felhom-no-such-node", restart=1), 500,
            "no such cluster node 'felhom-no-such-node'")
    step("lxc migrate refusals")

    def live(upid):
        tasks = px.nodes(here).tasks(upid)
        st = tasks.status.get()
        expect(st["status"] == "running" and "exitstatus" not in st, "migration status while held %r" % (st,))
        first = tasks.log.get(start=0, limit=1)
        rest = tasks.log.get(start=1, limit=50)
        lines = first + rest
        expect(len(first) == 1 and [l["n"] for l in lines] == list(range(1, len(lines) + 1)),
               "live log pages %r %r" % (first, rest))
        text = [l["t"] for l in lines]
        expect(any(t.endswith("shutdown CT %d" % vmid) for t in text)
               and any("starting migration of CT %d to node '%s'" % (vmid, other) in t for t in text)
               and not any(t.startswith("TASK ") for t in text), "live migration log %r" % (text,))
        expect(tasks.log.get(start=len(lines), limit=50) == [], "log past the end while running")
        conf = src.config.get()
        expect(conf.get("lock") == "migrate", "config while migrating %r" % (conf,))
        cur = src.status.current.get()
        expect(cur["status"] == "stopped", "restart mode shut CT %d down first, status %r" % (vmid, cur["status"]))
        refused(lambda: src.config.put(description="x"), 500, "CT is locked (migrate)")

    if "hold" in cfg["hooks"]:
        with hook("hold"):
            upid = src.migrate.post(target=other, restart=1)
            live(upid)
        step("lxc migration held running: status, log by start/limit, lock")
    else:
        upid = src.migrate.post(target=other, restart=1)
    expect(":vzmigrate:%d:" % vmid in upid, "migrate UPID %s" % upid)
    wait(upid)
    log = [l["t"] for l in px.nodes(here).tasks(upid).log.get(limit=0)]
    expect(log[-1] == "TASK OK" and any("start container on target node" in t for t in log), "migration log %r" % (log,))
    at = [r for r in px.cluster.resources.get(type="vm") if r["vmid"] == vmid]
    expect(len(at) == 1 and at[0]["node"] == other and at[0]["status"] == "running", "after migration %r" % (at,))
    refused(lambda: px.nodes(here).lxc(vmid).status.current.get(), 500,
            "Configuration file 'nodes/%s/lxc/%d.conf' does not exist" % (here, vmid))
    wait(op.nodes(other).lxc(vmid).migrate.post(target=here, restart=1))
    expect(px.nodes(here).lxc(vmid).status.current.get()["status"] == "running", "not back running")
    step("lxc %d: restart-mode migration to %s and back" % (vmid, other))


def migrate_vm(px, op, cfg, wait):
    """A running VM online: without with-local-disks its local disks stop
    the task, with it the VM moves; and back."""
    here, other, vmid = cfg["node"], cfg["cluster"]["other"], cfg["cluster"]["migrate_vm"]
    src = op.nodes(here).qemu(vmid)
    refused(lambda: src.migrate.post(target=other), 500, "can't migrate running VM without --online")
    upid = src.migrate.post(target=other, online=1)
    expect(":qmigrate:%d:" % vmid in upid, "qemu migrate UPID %s" % upid)
    wait(upid, want="migration aborted")
    log = [l["t"] for l in px.nodes(here).tasks(upid).log.get()]
    expect(any("can't live migrate attached local disks without with-local-disks option" in t for t in log),
           "aborted migration log %r" % (log,))
    wait(src.migrate.post(target=other, online=1, **{"with-local-disks": 1}))
    at = [r for r in px.cluster.resources.get(type="vm") if r["vmid"] == vmid]
    expect(len(at) == 1 and at[0]["node"] == other and at[0]["status"] == "running", "VM after migration %r" % (at,))
    wait(op.nodes(other).qemu(vmid).migrate.post(target=here, online=1, **{"with-local-disks": 1}))
    expect(px.nodes(here).qemu(vmid).status.current.get()["status"] == "running", "VM not back running")


def node_down(px, cfg, members):
    """The other node down: its paths answer pveproxy's 595 "No route to
    host" (no body), the cluster shows it offline and stays quorate; with
    every other node down there is no quorum and a start dies."""
    here, other = cfg["node"], cfg["cluster"]["other"]
    with hook("down", other):
        e = refused(lambda: px.nodes(other).status.get(), 595, "No route to host")
        expect(e.status_message == "Errors during connection establishment, proxy handshake", "595 as %r" % (str(e),))
        st = {m["name"]: m for m in px.cluster.status.get() if m["type"] == "node"}
        expect(st[other]["online"] == 0 and st[here]["online"] == 1, "members while %s is down %r" % (other, st))
        quorate = [m["quorate"] for m in px.cluster.status.get() if m["type"] == "cluster"]
        expect(quorate == [1 if len(members) > 2 else 0], "quorate with %s down: %r" % (other, quorate))
        nodes = {r["node"]: r for r in px.cluster.resources.get(type="node")}
        expect(nodes[other]["status"] == "offline", "node resource %r" % (nodes[other],))
        rest = sorted(n for n in members if n not in (here, other))
        with contextlib.ExitStack() as down:
            for n in rest:
                down.enter_context(hook("down", n))
            quorate = [m["quorate"] for m in px.cluster.status.get() if m["type"] == "cluster"]
            expect(quorate == [0], "quorate with one node of %d online: %r" % (len(members), quorate))
            refused(lambda: px.nodes(here).lxc(cfg["stopped"]).status.start.post(), 500,
                        "cluster not ready - no quorum?")


def main():
    cfg = json.loads(sys.stdin.readline())
    user, rest = cfg["token"].split("!", 1)
    token_name, token_value = rest.split("=", 1)
    px = ProxmoxAPI(cfg["host"], port=cfg["port"], user=user, token_name=token_name,
                    token_value=token_value, verify_ssl=cfg["cafile"], timeout=30)
    node = px.nodes(cfg["node"])
    stopped = node.lxc(cfg["stopped"])
    snap = cfg["snapshot"]

    def wait(upid, want="OK"):
        """Poll the task on the node its UPID names until it stops."""
        expect(isinstance(upid, str) and UPID.match(upid), "not a UPID: %r" % (upid,))
        delay = 0.005
        deadline = time.monotonic() + 120
        while True:
            st = px.nodes(upid.split(":")[1]).tasks(upid).status.get()
            if st["status"] == "stopped":
                expect(st.get("exitstatus") == want, "task %s ended %r, want %r" % (upid, st.get("exitstatus"), want))
                return st
            expect(st["status"] == "running" and "exitstatus" not in st, "bad running status %r" % (st,))
            expect(time.monotonic() < deadline, "task %s still running" % upid)
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def step(name):
        print("ok", name, flush=True)

    archive = None
    restored = False
    try:
        expect(px.version.get()["version"], "no version")
        step("version")
        # pve-manager PVE/API2/Nodes.pm "version": the node's answer is
        # GET /version's; an unknown node is pve-cluster's check_node_exists.
        expect(node.version.get() == px.version.get(), "nodes/NODE/version differs from /version")
        refused(lambda: px.nodes("felhom-no-such-node").version.get(), 500, "no such cluster node 'felhom-no-such-node'")
        step("node-version")
        expect(isinstance(px.cluster.nextid.get(), str), "nextid is not a JSON string")
        step("nextid")

        status = px.cluster.status.get()
        me = [e for e in status if e.get("type") == "node" and e.get("name") == cfg["node"]]
        expect(len(me) == 1 and me[0].get("local") == 1, "cluster status %r" % (status,))
        step("cluster status")

        store = px.storage(cfg["backup_storage"]).get()
        expect(store["storage"] == cfg["backup_storage"] and "backup" in store["content"], "storage config %r" % (store,))
        st = node.storage(cfg["backup_storage"]).status.get()
        expect(st.get("active") == 1 and st.get("total", 0) > 0, "storage status %r" % (st,))
        step("storage config and status")

        for guest in cfg["guests"]:
            guest_snapshots(node, guest, snap, wait)
            step("%s %d: snapshot, its config, rollback, delete snapshot" % (guest["kind"], guest["stopped"]))

        listed = {c["vmid"]: c for c in node.lxc.get()}
        for vmid, c in listed.items():
            expect(isinstance(vmid, int) and c["type"] == "lxc" and c["status"] in ("running", "stopped")
                   and isinstance(c["maxmem"], int) and isinstance(c["maxdisk"], int) and "name" in c,
                   "container listing entry %r" % (c,))
        expect(listed[cfg["running"]]["status"] == "running" and listed[cfg["running"]]["uptime"] > 0
               and listed[cfg["stopped"]]["status"] == "stopped", "listing status %r" % (listed,))
        raw = 0
        for vmid in listed:
            for pair in node.lxc(vmid).config.get().get("lxc", []):
                expect(isinstance(pair, list) and len(pair) == 2 and pair[0].startswith("lxc."), "lxc array entry %r" % (pair,))
                raw += 1
        step("container listing, %d raw lxc.* config entries" % raw)

        before = stopped.config.get().get("description")
        expect(stopped.config.put(description="proxmoxer") is None, "config PUT did not answer null")
        got = stopped.config.get().get("description")
        expect(got == "proxmoxer\n", "description read back %r" % (got,))
        if before:
            stopped.config.put(description=before)
        else:
            stopped.config.put(delete="description")
        step("config put")

        content = node.storage(cfg["backup_storage"]).content
        had = {v["volid"] for v in content.get(content="backup", vmid=cfg["stopped"])}
        wait(node.vzdump.post(vmid=cfg["stopped"], storage=cfg["backup_storage"], mode="snapshot",
                              compress="zstd", remove=0))
        new = [v for v in content.get(content="backup", vmid=cfg["stopped"]) if v["volid"] not in had]
        expect(len(new) == 1, "vzdump made %r" % (new,))
        archive = new[0]["volid"]
        m = ARCHIVE.match(archive)
        expect(m and m.group(1) == str(cfg["stopped"]), "archive name %r" % (archive,))
        expect(new[0]["format"] == "tar.zst" and new[0]["subtype"] == "lxc", "archive entry %r" % (new[0],))
        step("vzdump " + archive)

        volume_notes(node.storage(cfg["backup_storage"]), archive, '')
        step("notes of " + archive)
        pbs = [p["storage"] for p in px.storage.get(type="pbs")]
        for sid in pbs:
            backups = node.storage(sid).content.get(content="backup")
            if not backups:
                continue
            info = node.storage(sid).content(backups[0]["volid"]).get()
            expect(info["path"].startswith("pbs://") and info["format"] == backups[0]["format"] and info["size"] > 0,
                   "pbs volume info %r" % (info,))
            volume_notes(node.storage(sid), backups[0]["volid"], info.get("notes", ""))
            step("pbs %s: volume info and notes of %s" % (sid, backups[0]["volid"]))

        wait(node.lxc.post(vmid=cfg["scratch"], ostemplate=archive, restore=1, storage=cfg["guest_storage"]))
        restored = True
        expect(node.lxc(cfg["scratch"]).status.current.get()["status"] == "stopped", "restored guest not stopped")
        step("restore")

        try:
            node.lxc(cfg["running"]).status.start.post()
            raise Mismatch("starting a running guest succeeded")
        except ResourceException as e:
            want = "CT %d already running" % cfg["running"]
            expect(e.status_code == 500 and e.content == want, "refusal %d %r, want 500 %r" % (e.status_code, e.content, want))
        step("start refused")

        tasks = node.tasks.get(typefilter="vzsnapshot", limit=500)
        expect(tasks and all(t["type"] == "vzsnapshot" for t in tasks), "task list %r" % (tasks,))
        whole = node.tasks(tasks[0]["upid"]).log.get(limit=0)
        expect(whole and whole[-1]["t"] == "TASK OK" and [l["n"] for l in whole] == list(range(1, len(whole) + 1)),
               "log?limit=0 %r" % (whole,))
        step("tasks and a whole log")

        if cfg.get("cluster"):
            cluster_steps(px, cfg, wait, step)
        else:
            step("cluster steps skipped: the host is in no cluster")

        user, rest = cfg["token"].split("!", 1)
        token_name = rest.split("=", 1)[0]
        wrong = ProxmoxAPI(cfg["host"], port=cfg["port"], user=user, token_name=token_name,
                           token_value="felhom-wrong-secret", verify_ssl=cfg["cafile"], timeout=30)
        try:
            wrong.version.get()
            raise Mismatch("a wrong secret was accepted")
        except ResourceException as e:
            expect(e.status_code == 401 and e.content in ("invalid token value!", "Authentication failed!"),
                   "wrong secret: %d %r" % (e.status_code, e.content))
        step("wrong secret refused")
    finally:
        if restored:
            wait(node.lxc(cfg["scratch"]).delete(purge=1))
        if archive:
            upid = node.storage(cfg["backup_storage"]).content(archive).delete()
            if upid:
                wait(upid)
        step("cleanup")


if __name__ == "__main__":
    try:
        main()
    except Mismatch as e:
        print("MISMATCH:", e, flush=True)
        sys.exit(1)
