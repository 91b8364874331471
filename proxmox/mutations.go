package proxmox

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Every mutation below sends one request, never retried, and returns the
// UPID of the worker task PVE started; the caller waits for it with
// WaitTask, because PVE checks many privileges only inside the task. A
// connection that broke after the request was sent is reported wrapping
// ErrAmbiguous. Optional booleans are sent (as 1) only when true, except
// where PVE's default is true.

// mutate sends a mutation and decodes the UPID it returns. allowNull marks
// the endpoints that may finish synchronously and answer null, for which
// the zero UPID is returned.
func (c *Client) mutate(ctx context.Context, method string, p apiPath, params url.Values, allowNull bool) (UPID, error) {
	if err := c.gate(ctx, method, p, params); err != nil {
		return UPID{}, err
	}
	env, err := c.do(ctx, method, p, params)
	if err != nil {
		return UPID{}, err
	}
	if string(bytes.TrimSpace(env.Data)) == `"OK"` {
		return UPID{}, fmt.Errorf("%s %s: %w", method, p.plain, ErrNoTask)
	}
	upid, err := decodeUPID(env.Data, allowNull)
	if err != nil {
		// PVE accepted the request, so something may be running that we
		// cannot follow: the caller must look before acting again.
		return UPID{}, fmt.Errorf("%s %s: %w: %w", method, p.plain, ErrAmbiguous, err)
	}
	if !upid.IsZero() {
		if obs := observerFrom(ctx); obs != nil {
			obs.TaskStarted(upid)
		}
	}
	return upid, nil
}

// gate asks the context's [MutationGate] about a change before it is
// sent; it fails closed when none is there and one is required.
func (c *Client) gate(ctx context.Context, method string, p apiPath, params url.Values) error {
	if g, ok := observerFrom(ctx).(MutationGate); ok {
		if err := g.BeforeMutation(ctx, Mutation{Method: method, Path: p.plain, Params: params}); err != nil {
			return fmt.Errorf("%s %s: %w: %w", method, p.plain, ErrNotSent, err)
		}
		return nil
	}
	if c.requireGate {
		return fmt.Errorf("%s %s: %w: %w", method, p.plain, ErrNotSent, ErrNoGate)
	}
	return nil
}

// decodeUPID reads a mutation's data: a UPID string, or null where the
// endpoint may finish synchronously.
func decodeUPID(data json.RawMessage, allowNull bool) (UPID, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || string(data) == "null" {
		if allowNull {
			return UPID{}, nil
		}
		return UPID{}, fmt.Errorf("response has no task id (data is null)")
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return UPID{}, fmt.Errorf("response data is not a task id: %.60s", data)
	}
	return ParseUPID(s)
}

// configKeyRe is what a guest configuration key looks like (net0,
// onboot, cores).
var configKeyRe = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)

// RestoreGuest restores a vzdump archive or PBS snapshot into guest
// o.VMID: a container with POST /nodes/{node}/lxc, ostemplate and
// restore=1 (worker vzrestore), a VM with POST /nodes/{node}/qemu and
// archive (worker qmrestore; qemu-server API2/Qemu.pm create_vm), with
// o.Config set over the archive's configuration. Without o.Force, PVE
// refuses if the vmid is taken.
func (c *Client) RestoreGuest(ctx context.Context, o RestoreOptions) (UPID, error) {
	if err := needVMID(o.VMID); err != nil {
		return UPID{}, err
	}
	if o.Archive == "" {
		return UPID{}, paramError("archive", o.Archive, "is required (the backup volid to restore)")
	}
	kind := o.Kind
	if kind == "" {
		var err error
		if kind, err = kindOfArchive(o.Archive); err != nil {
			return UPID{}, err
		}
	}
	if err := needKind(kind); err != nil {
		return UPID{}, err
	}
	v := url.Values{"vmid": {strconv.Itoa(o.VMID)}}
	if kind == LXC {
		v.Set("ostemplate", o.Archive)
		v.Set("restore", "1")
	} else {
		v.Set("archive", o.Archive)
	}
	if o.Storage != "" {
		if err := needStorageID("storage", o.Storage); err != nil {
			return UPID{}, err
		}
		v.Set("storage", o.Storage)
	}
	setTrue(v, "force", o.Force)
	setTrue(v, "unique", o.Unique)
	setTrue(v, "start", o.Start)
	if o.Hostname != "" {
		if kind == QEMU {
			return UPID{}, paramError("hostname", o.Hostname, "applies only to containers (a VM's name is in its archive)")
		}
		v.Set("hostname", o.Hostname)
	}
	for k, val := range o.Config {
		if _, taken := v[k]; taken || !configKeyRe.MatchString(k) {
			return UPID{}, paramError("config", k, "is not a configuration key the restore request can set")
		}
		v.Set(k, val)
	}
	return c.mutate(ctx, http.MethodPost, c.nodePath(string(kind)), v, false)
}

var (
	vzdumpModes    = []string{"snapshot", "suspend", "stop"}
	vzdumpCompress = []string{"0", "1", "gzip", "lzo", "zstd"}
)

// Vzdump backs up guests to o.Storage (POST /nodes/{node}/vzdump, worker
// vzdump): o.VMIDs, or every guest with o.All. Mode defaults to snapshot
// and Compress to zstd. Remove is always sent, because PVE's default is
// to prune: false keeps every archive.
func (c *Client) Vzdump(ctx context.Context, o VzdumpOptions) (UPID, error) {
	v := url.Values{}
	switch {
	case o.All && len(o.VMIDs) > 0:
		return UPID{}, paramError("vmid", joinInts(o.VMIDs), "cannot be combined with all")
	case o.All:
		v.Set("all", "1")
	case len(o.VMIDs) == 0:
		return UPID{}, paramError("vmid", "", "is required (or all)")
	default:
		for _, id := range o.VMIDs {
			if err := needVMID(id); err != nil {
				return UPID{}, err
			}
		}
		v.Set("vmid", joinInts(o.VMIDs))
	}
	if err := needStorageID("storage", o.Storage); err != nil {
		return UPID{}, err
	}
	v.Set("storage", o.Storage)
	mode := cmp.Or(o.Mode, "snapshot")
	if !slices.Contains(vzdumpModes, mode) {
		return UPID{}, paramError("mode", mode, fmt.Sprintf("is not one of %v", vzdumpModes))
	}
	v.Set("mode", mode)
	compress := cmp.Or(o.Compress, "zstd")
	if !slices.Contains(vzdumpCompress, compress) {
		return UPID{}, paramError("compress", compress, fmt.Sprintf("is not one of %v", vzdumpCompress))
	}
	v.Set("compress", compress)
	if o.Notes != "" {
		v.Set("notes-template", o.Notes)
	}
	v.Set("remove", boolParam(o.Remove))
	return c.mutate(ctx, http.MethodPost, c.nodePath("vzdump"), v, false)
}

// Snapshot takes snapshot o.Name of a guest
// (POST /nodes/{node}/{lxc|qemu}/{vmid}/snapshot, worker vzsnapshot or
// qmsnapshot). o.VMState (save a running VM's RAM) is refused for a
// container, which has none to save.
func (c *Client) Snapshot(ctx context.Context, kind GuestKind, vmid int, o SnapshotOptions) (UPID, error) {
	if err := needGuest(kind, vmid); err != nil {
		return UPID{}, err
	}
	if err := needSnapname(o.Name); err != nil {
		return UPID{}, err
	}
	v := url.Values{"snapname": {o.Name}}
	if o.Description != "" {
		v.Set("description", o.Description)
	}
	if o.VMState {
		if kind != QEMU {
			return UPID{}, paramError("vmstate", true, "applies only to VMs (a container has no RAM state to save)")
		}
		v.Set("vmstate", "1")
	}
	return c.mutate(ctx, http.MethodPost, c.kindPath(kind, vmid, "snapshot"), v, false)
}

// Rollback rolls a guest back to snapshot name
// (POST /nodes/{node}/{lxc|qemu}/{vmid}/snapshot/{snapname}/rollback,
// worker vzrollback or qmrollback). A VM snapshot with a vmstate resumes
// the VM; otherwise the guest is stopped afterwards.
func (c *Client) Rollback(ctx context.Context, kind GuestKind, vmid int, name string) (UPID, error) {
	if err := needGuest(kind, vmid); err != nil {
		return UPID{}, err
	}
	if err := needSnapname(name); err != nil {
		return UPID{}, err
	}
	return c.mutate(ctx, http.MethodPost, c.kindPath(kind, vmid, "snapshot", name, "rollback"), nil, false)
}

// DeleteSnapshot deletes snapshot name of a guest
// (DELETE /nodes/{node}/{lxc|qemu}/{vmid}/snapshot/{snapname}, worker
// vzdelsnapshot or qmdelsnapshot).
func (c *Client) DeleteSnapshot(ctx context.Context, kind GuestKind, vmid int, name string) (UPID, error) {
	if err := needGuest(kind, vmid); err != nil {
		return UPID{}, err
	}
	if err := needSnapname(name); err != nil {
		return UPID{}, err
	}
	return c.mutate(ctx, http.MethodDelete, c.kindPath(kind, vmid, "snapshot", name), nil, false)
}

// Start starts a guest (POST .../status/start, worker vzstart or qmstart).
func (c *Client) Start(ctx context.Context, kind GuestKind, vmid int) (UPID, error) {
	return c.power(ctx, kind, vmid, "start", nil)
}

// Stop stops a guest at once, like pulling the plug
// (POST .../status/stop, worker vzstop or qmstop). PVE refuses it for a
// stopped container; for a stopped VM the task does nothing and succeeds.
func (c *Client) Stop(ctx context.Context, kind GuestKind, vmid int) (UPID, error) {
	return c.power(ctx, kind, vmid, "stop", nil)
}

// Reboot restarts a running guest cleanly (POST .../status/reboot, worker
// vzreboot or qmreboot); PVE refuses it for a stopped guest.
func (c *Client) Reboot(ctx context.Context, kind GuestKind, vmid int) (UPID, error) {
	return c.power(ctx, kind, vmid, "reboot", nil)
}

// Shutdown asks a guest to shut down cleanly (POST .../status/shutdown,
// worker vzshutdown or qmshutdown), waiting at most timeout seconds; 0
// means PVE's default of 60. The task fails if the guest is still running
// then.
func (c *Client) Shutdown(ctx context.Context, kind GuestKind, vmid int, timeout int) (UPID, error) {
	if timeout < 0 {
		return UPID{}, paramError("timeout", timeout, "must not be negative")
	}
	v := url.Values{}
	if timeout > 0 {
		v.Set("timeout", strconv.Itoa(timeout))
	}
	return c.power(ctx, kind, vmid, "shutdown", v)
}

func (c *Client) power(ctx context.Context, kind GuestKind, vmid int, action string, v url.Values) (UPID, error) {
	if err := needGuest(kind, vmid); err != nil {
		return UPID{}, err
	}
	return c.mutate(ctx, http.MethodPost, c.kindPath(kind, vmid, "status", action), v, false)
}

// DeleteGuest destroys a stopped guest and its disks
// (DELETE /nodes/{node}/{lxc|qemu}/{vmid}, worker vzdestroy or qmdestroy).
// purge also removes it from backup jobs, replication and HA.
func (c *Client) DeleteGuest(ctx context.Context, kind GuestKind, vmid int, purge bool) (UPID, error) {
	if err := needGuest(kind, vmid); err != nil {
		return UPID{}, err
	}
	v := url.Values{}
	setTrue(v, "purge", purge)
	return c.mutate(ctx, http.MethodDelete, c.kindPath(kind, vmid), v, false)
}

// DeleteVolume deletes a volume, e.g. an old backup archive
// (DELETE /nodes/{node}/storage/{storage}/content/{volid}, worker imgdel).
// volid is the full id ("usb-backup:backup/vzdump-lxc-....tar.zst"),
// escaped as one path segment; its storage must be storage, as PVE
// requires. A host that deletes synchronously answers null: the zero UPID.
func (c *Client) DeleteVolume(ctx context.Context, storage, volid string) (UPID, error) {
	if err := needStorageID("storage", storage); err != nil {
		return UPID{}, err
	}
	volStorage, name, ok := strings.Cut(volid, ":")
	switch {
	case !ok || name == "":
		return UPID{}, paramError("volume", volid, "is not a volume id (STORAGE:PATH)")
	case volStorage != storage:
		return UPID{}, paramError("volume", volid, fmt.Sprintf("is not on storage %q", storage))
	}
	return c.mutate(ctx, http.MethodDelete, c.nodePath("storage", storage, "content", volid), nil, true)
}

// SetConfig changes a guest's configuration: set writes keys, del removes
// them (sent as delete=a,b). Whether the change is a task depends on the
// path, so the rule is kept per path here:
//   - a container: PUT /nodes/{node}/lxc/{vmid}/config, applied
//     synchronously; PVE answers null, returned as the zero UPID with a nil
//     error;
//   - a VM: POST /nodes/{node}/qemu/{vmid}/config, which forks a qmconfig
//     worker and answers its UPID (qemu-server API2/Qemu.pm update_vm_api;
//     the PUT twin is synchronous, and a POST with background_delay may
//     answer null, which is accepted too).
//
// Should a host answer a container change with a UPID, it is returned for
// the caller to wait on.
//
// A container's guest-API identity line (identity.go) is carried over: a
// new description keeps it, a deleted one leaves only it, so no flow can
// drop it by writing the description it read.
func (c *Client) SetConfig(ctx context.Context, kind GuestKind, vmid int, set map[string]string, del []string) (UPID, error) {
	if err := needGuest(kind, vmid); err != nil {
		return UPID{}, err
	}
	if len(set) == 0 && len(del) == 0 {
		return UPID{}, paramError("set", "", "and delete are both empty: nothing to change")
	}
	set, del, err := c.keepIdentity(ctx, kind, vmid, set, del)
	if err != nil {
		return UPID{}, err
	}
	return c.setConfig(ctx, kind, vmid, set, del)
}

// setConfig is SetConfig without the identity carry-over.
func (c *Client) setConfig(ctx context.Context, kind GuestKind, vmid int, set map[string]string, del []string) (UPID, error) {
	v := url.Values{}
	for k, val := range set {
		if k == "" || k == "delete" || k == "vmid" || k == "node" {
			return UPID{}, paramError("set", k, "is not a config key that can be set")
		}
		v.Set(k, val)
	}
	for _, k := range del {
		if k == "" || strings.Contains(k, ",") {
			return UPID{}, paramError("delete", k, "is not a config key")
		}
		if _, ok := set[k]; ok {
			return UPID{}, paramError("delete", k, "is also in set")
		}
	}
	if len(del) > 0 {
		v.Set("delete", strings.Join(del, ","))
	}
	method := http.MethodPut
	if kind == QEMU {
		method = http.MethodPost
	}
	return c.mutate(ctx, method, c.kindPath(kind, vmid, "config"), v, true)
}

// setTrue sets key=1 when b, and leaves PVE's default (false) otherwise.
func setTrue(v url.Values, key string, b bool) {
	if b {
		v.Set(key, "1")
	}
}

// boolParam is PVE's form encoding of a boolean.
func boolParam(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func joinInts(ids []int) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.Itoa(id)
	}
	return strings.Join(parts, ",")
}

// SetVolumeNotes replaces the notes of backup archive volid
// (PUT /nodes/{node}/storage/{storage}/content/{volid}, pve-storage
// API2/Storage/Content.pm updateattributes): synchronous, no task. PVE
// keeps them in a .notes file beside the archive (a directory storage) or
// as the snapshot's comment (Proxmox Backup Server), so they travel with
// the archive: every node that sees the storage sees them. Empty notes
// remove them. PVE refuses notes on anything but a backup ("only backups
// can have notes").
func (c *Client) SetVolumeNotes(ctx context.Context, volid, notes string) error {
	storage, name, ok := strings.Cut(volid, ":")
	if !ok || name == "" {
		return paramError("volume", volid, "is not a volume id (STORAGE:PATH)")
	}
	if err := needStorageID("volume", storage); err != nil {
		return err
	}
	v := url.Values{}
	v.Set("notes", notes)
	_, err := c.mutate(ctx, http.MethodPut, c.nodePath("storage", storage, "content", volid), v, true)
	return err
}
