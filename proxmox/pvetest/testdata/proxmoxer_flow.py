"""Drive a Proxmox VE host with proxmoxer, as third-party automation does.

Run by pvetest.Proxmoxer with a JSON object on stdin (host, port, cafile, node,
token, running, stopped, scratch, backup_storage, guest_storage). Prints one
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

        wait(stopped.snapshot.post(snapname=snap, description="proxmoxer"))
        names = [s["name"] for s in stopped.snapshot.get()]
        expect(snap in names and "current" in names, "snapshot list %r" % (names,))
        wait(stopped.snapshot(snap).rollback.post())
        wait(stopped.snapshot(snap).delete())
        expect(snap not in [s["name"] for s in stopped.snapshot.get()], "snapshot not deleted")
        step("snapshot, rollback, delete snapshot")

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
