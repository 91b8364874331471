package proxmox

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
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
	if gate, ok := observerFrom(ctx).(MutationGate); ok {
		if err := gate.BeforeMutation(ctx, method, p.plain); err != nil {
			return UPID{}, fmt.Errorf("%s %s: %w: %w", method, p.plain, ErrNotSent, err)
		}
	}
	env, err := c.do(ctx, method, p, params)
	if err != nil {
		return UPID{}, err
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

// RestoreGuest restores a vzdump archive into guest o.VMID
// (POST /nodes/{node}/lxc with restore=1, worker vzrestore). Without
// o.Force, PVE refuses if the guest exists.
func (c *Client) RestoreGuest(ctx context.Context, o RestoreOptions) (UPID, error) {
	if err := needVMID(o.VMID); err != nil {
		return UPID{}, err
	}
	if o.Archive == "" {
		return UPID{}, paramError("ostemplate", o.Archive, "is required (the backup volid to restore)")
	}
	v := url.Values{
		"vmid":       {strconv.Itoa(o.VMID)},
		"ostemplate": {o.Archive},
		"restore":    {"1"},
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
		v.Set("hostname", o.Hostname)
	}
	return c.mutate(ctx, http.MethodPost, c.nodePath("lxc"), v, false)
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

// Snapshot takes a snapshot named name of a container
// (POST /nodes/{node}/lxc/{vmid}/snapshot, worker vzsnapshot).
func (c *Client) Snapshot(ctx context.Context, vmid int, name, description string) (UPID, error) {
	if err := needVMID(vmid); err != nil {
		return UPID{}, err
	}
	if err := needSnapname(name); err != nil {
		return UPID{}, err
	}
	v := url.Values{"snapname": {name}}
	if description != "" {
		v.Set("description", description)
	}
	return c.mutate(ctx, http.MethodPost, c.guestPath(vmid, "snapshot"), v, false)
}

// Rollback rolls a container back to snapshot name
// (POST /nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback, worker
// vzrollback).
func (c *Client) Rollback(ctx context.Context, vmid int, name string) (UPID, error) {
	if err := needVMID(vmid); err != nil {
		return UPID{}, err
	}
	if err := needSnapname(name); err != nil {
		return UPID{}, err
	}
	return c.mutate(ctx, http.MethodPost, c.guestPath(vmid, "snapshot", name, "rollback"), nil, false)
}

// DeleteSnapshot deletes snapshot name of a container
// (DELETE /nodes/{node}/lxc/{vmid}/snapshot/{snapname}, worker
// vzdelsnapshot).
func (c *Client) DeleteSnapshot(ctx context.Context, vmid int, name string) (UPID, error) {
	if err := needVMID(vmid); err != nil {
		return UPID{}, err
	}
	if err := needSnapname(name); err != nil {
		return UPID{}, err
	}
	return c.mutate(ctx, http.MethodDelete, c.guestPath(vmid, "snapshot", name), nil, false)
}

// Start starts a container (POST .../status/start, worker vzstart).
func (c *Client) Start(ctx context.Context, vmid int) (UPID, error) {
	return c.power(ctx, vmid, "start", nil)
}

// Stop stops a container at once, like pulling the plug
// (POST .../status/stop, worker vzstop).
func (c *Client) Stop(ctx context.Context, vmid int) (UPID, error) {
	return c.power(ctx, vmid, "stop", nil)
}

// Shutdown asks a container to shut down cleanly (POST .../status/shutdown,
// worker vzshutdown), waiting at most timeout seconds; 0 means PVE's
// default of 60. The task fails if the guest is still running then.
func (c *Client) Shutdown(ctx context.Context, vmid int, timeout int) (UPID, error) {
	if timeout < 0 {
		return UPID{}, paramError("timeout", timeout, "must not be negative")
	}
	v := url.Values{}
	if timeout > 0 {
		v.Set("timeout", strconv.Itoa(timeout))
	}
	return c.power(ctx, vmid, "shutdown", v)
}

func (c *Client) power(ctx context.Context, vmid int, action string, v url.Values) (UPID, error) {
	if err := needVMID(vmid); err != nil {
		return UPID{}, err
	}
	return c.mutate(ctx, http.MethodPost, c.guestPath(vmid, "status", action), v, false)
}

// DeleteGuest destroys a stopped container and its disks
// (DELETE /nodes/{node}/lxc/{vmid}, worker vzdestroy). purge also removes
// it from backup jobs, replication and HA.
func (c *Client) DeleteGuest(ctx context.Context, vmid int, purge bool) (UPID, error) {
	if err := needVMID(vmid); err != nil {
		return UPID{}, err
	}
	v := url.Values{}
	setTrue(v, "purge", purge)
	return c.mutate(ctx, http.MethodDelete, c.guestPath(vmid), v, false)
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

// SetConfig changes a container's configuration
// (PUT /nodes/{node}/lxc/{vmid}/config): set writes keys, del removes them
// (sent as delete=a,b). PVE applies an LXC config change synchronously and
// answers null, returned as the zero UPID with a nil error; should a host
// answer with a UPID instead, it is returned for the caller to wait on.
func (c *Client) SetConfig(ctx context.Context, vmid int, set map[string]string, del []string) (UPID, error) {
	if err := needVMID(vmid); err != nil {
		return UPID{}, err
	}
	if len(set) == 0 && len(del) == 0 {
		return UPID{}, paramError("set", "", "and delete are both empty: nothing to change")
	}
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
	return c.mutate(ctx, http.MethodPut, c.guestPath(vmid, "config"), v, true)
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
