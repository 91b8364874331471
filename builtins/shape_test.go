package builtins

import (
	"strings"
	"testing"

	"go.starlark.net/starlark"
)

// shapeCalls calls every builtin that declares a Shape on the simulator,
// in an order that gives each something to return; got[NAME] is the value
// to match against NAME's Returns.
const shapeCalls = `
got = {}
got["proxmox.version"] = proxmox.version()
got["proxmox.nodes"] = proxmox.nodes()
got["proxmox.node_status"] = proxmox.node_status()
got["proxmox.resources"] = proxmox.resources()
got["proxmox.guests"] = proxmox.guests()
got["proxmox.cluster"] = proxmox.cluster()
got["proxmox.locate"] = proxmox.locate(101)
got["proxmox.guest"] = proxmox.guest(101)
got["proxmox.config"] = proxmox.config(101)
got["proxmox.storages"] = proxmox.storages()
got["proxmox.node_storages"] = proxmox.node_storages()
got["proxmox.content"] = proxmox.content("usb-backup")
got["proxmox.disks"] = proxmox.disks()
got["proxmox.smart"] = proxmox.smart("/dev/sda")
got["proxmox.vzdump"] = proxmox.vzdump(101, storage = "usb-backup")
got["proxmox.snapshot"] = proxmox.snapshot(101, "shape")
got["proxmox.snapshots"] = proxmox.snapshots(101)
got["proxmox.rollback"] = proxmox.rollback(101, "shape")
got["proxmox.delete_snapshot"] = proxmox.delete_snapshot(101, "shape")
got["proxmox.tasks"] = proxmox.tasks()
got["proxmox.set_config"] = proxmox.set_config(101, set = {"description": "shape"})
if not proxmox.guest(101).running:
    proxmox.start(101)
got["proxmox.stop"] = proxmox.stop(101)
got["proxmox.start"] = proxmox.start(101)
got["proxmox.reboot"] = proxmox.reboot(101)
got["proxmox.wait_status"] = proxmox.wait_status(101)
got["proxmox.shutdown"] = proxmox.shutdown(101)
got["task.status"] = task.status(got["proxmox.start"])
got["task.wait"] = task.wait(proxmox.start(101, wait = False))
id = proxmox.next_id()
got["proxmox.restore"] = proxmox.restore(id, got["proxmox.vzdump"].volid, storage = "local-lvm", unique = True)
got["proxmox.delete_guest"] = proxmox.delete_guest(id)
got["proxmox.delete_volume"] = proxmox.delete_volume("usb-backup", got["proxmox.vzdump"].volid)
got["host.smart"] = host.smart("/dev/sda")
got["host.sensors"] = host.sensors()
got["catch"] = catch(proxmox.guest, 4242)
got["guest.deliver_bootstrap"] = guest.deliver_bootstrap(101)
got["guest.ensure_bootstrap"] = guest.ensure_bootstrap(101)
got["monitor.node"] = monitor.node()
got["monitor.storage"] = monitor.storage()
got["monitor.smart"] = monitor.smart()
got["monitor.sensors"] = monitor.sensors()
got["monitor.tunnel"] = monitor.tunnel()
got["monitor.all"] = monitor.all()
`

// TestReturnsMatchTheBuiltins holds every declared Shape to what its
// builtin returns on the simulator: exactly the declared fields, nested
// shapes included. A builtin that declares a Shape and has no call above
// fails the test, so a new declaration comes with its proof.
func TestReturnsMatchTheBuiltins(t *testing.T) {
	_, env := e2eRig(t)
	env.Guests = fakeDelivery{}
	globals, err := runStar(t, env, shapeCalls)
	if err != nil {
		t.Fatal(err)
	}
	got := globals["got"].(*starlark.Dict)
	for _, tab := range Tables() {
		for _, f := range tab.Funcs {
			if f.Returns == nil {
				continue
			}
			name := qualified(tab.Name, f.Name)
			v, found, _ := got.Get(starlark.String(name))
			if !found {
				t.Errorf("%s declares Returns %s, but shapeCalls does not call it", name, f.Returns.Name)
				continue
			}
			if l, ok := v.(*starlark.List); ok && l.Len() == 0 {
				t.Errorf("%s returned an empty list: nothing to match", name)
			}
			if err := f.Returns.Match(v); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
}

func TestShapeMatch(t *testing.T) {
	s := StructShape("pair", "a", "b").With("b", StructShape("inner", "x"))
	good := newStruct(starlark.StringDict{"a": starlark.MakeInt(1), "b": newStruct(starlark.StringDict{"x": starlark.None})})
	if err := s.Match(good); err != nil {
		t.Errorf("Match(good) = %v", err)
	}
	if err := s.Match(starlark.None); err != nil {
		t.Errorf("Match(None) = %v; None stands for an absent struct", err)
	}
	for v, want := range map[starlark.Value]string{
		newStruct(starlark.StringDict{"a": starlark.MakeInt(1)}):                                                          "pair: fields a; declared a, b",
		newStruct(starlark.StringDict{"a": starlark.MakeInt(1), "b": newStruct(starlark.StringDict{"y": starlark.None})}): "pair.b: inner: fields y; declared x",
		starlark.MakeInt(1): "pair: got int, want struct",
	} {
		if err := s.Match(v); err == nil || err.Error() != want {
			t.Errorf("Match(%v) = %v; want %q", v, err, want)
		}
	}
	l := ListOf(s)
	if err := l.Match(starlark.NewList([]starlark.Value{good, starlark.MakeInt(2)})); err == nil || !strings.Contains(err.Error(), "element 1: pair: got int") {
		t.Errorf("ListOf.Match = %v", err)
	}
	if l.Name != "list of pair" || !l.IsList() || s.IsList() || !s.Has("a") || s.Has("c") {
		t.Errorf("ListOf(pair) = %+v", l)
	}
}
