"""Drive a Proxmox VE host with proxmoxer, as third-party automation does.

Run by pvetest.Proxmoxer with a JSON object on stdin (host, port, cafile, node,
token, running, stopped, scratch, backup_storage, guest_storage, and guests: one
{kind, stopped} per guest kind the snapshot steps run on). Prints one
line per step and exits non-zero at the first answer a real host would not
give. Whatever it creates it removes again.
"""

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


def main():
    cfg = json.load(sys.stdin)
    user, rest = cfg["token"].split("!", 1)
    token_name, token_value = rest.split("=", 1)
    px = ProxmoxAPI(cfg["host"], port=cfg["port"], user=user, token_name=token_name,
                    token_value=token_value, verify_ssl=cfg["cafile"], timeout=30)
    node = px.nodes(cfg["node"])
    stopped = node.lxc(cfg["stopped"])
    snap = cfg["snapshot"]

    def wait(upid, want="OK"):
        expect(isinstance(upid, str) and UPID.match(upid), "not a UPID: %r" % (upid,))
        delay = 0.005
        deadline = time.monotonic() + 120
        while True:
            st = node.tasks(upid).status.get()
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
