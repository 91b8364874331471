package safety

import (
	"context"
	"fmt"
	"slices"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// hostReader is what [ClientFacts] reads; *proxmox.Client implements it.
type hostReader interface {
	ClusterResources(ctx context.Context, typ string) ([]proxmox.Resource, error)
	NodeStorages(ctx context.Context) ([]proxmox.Storage, error)
	Storages(ctx context.Context) ([]proxmox.Storage, error)
	StorageContent(ctx context.Context, storage, content string, vmid int) ([]proxmox.Volume, error)
	GuestConfig(ctx context.Context, kind proxmox.GuestKind, vmid int) (proxmox.GuestConfig, error)
}

// ClientFacts reads the gate's facts through the Proxmox client.
type ClientFacts struct{ C hostReader }

// GuestExists implements [Facts]: the whole cluster, so that a guest
// migrated to another node still counts.
func (f ClientFacts) GuestExists(ctx context.Context, vmid int) (bool, error) {
	rs, err := f.C.ClusterResources(ctx, "vm")
	if err != nil {
		return false, fmt.Errorf("listing the cluster's guests: %w", err)
	}
	return slices.ContainsFunc(rs, func(r proxmox.Resource) bool { return r.VMID == vmid }), nil
}

// BackupStorages implements [Facts]: the node's active storages whose
// content includes backups.
func (f ClientFacts) BackupStorages(ctx context.Context) ([]string, error) {
	sts, err := f.C.NodeStorages(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing the node's storages: %w", err)
	}
	var out []string
	for _, st := range sts {
		if slices.Contains(st.Content, "backup") && st.Active {
			out = append(out, st.Storage)
		}
	}
	return out, nil
}

// StorageBackups implements [Facts].
func (f ClientFacts) StorageBackups(ctx context.Context, storage string, vmid int) ([]proxmox.Volume, error) {
	vols, err := f.C.StorageContent(ctx, storage, "backup", vmid)
	if err != nil {
		return nil, fmt.Errorf("listing the backups on %s: %w", storage, err)
	}
	return slices.DeleteFunc(vols, func(v proxmox.Volume) bool { return v.VMID != vmid }), nil
}

// MountPoint implements [Facts].
func (f ClientFacts) MountPoint(ctx context.Context, vmid int, key string) (string, error) {
	cfg, err := f.C.GuestConfig(ctx, proxmox.LXC, vmid)
	if err != nil {
		return "", fmt.Errorf("reading guest %d's configuration: %w", vmid, err)
	}
	return cfg.Raw[key], nil
}

// Retention implements [Facts].
func (f ClientFacts) Retention(ctx context.Context, storage string) (string, error) {
	sts, err := f.C.Storages(ctx)
	if err != nil {
		return "", fmt.Errorf("reading the storage configuration: %w", err)
	}
	for _, st := range sts {
		if st.Storage == storage {
			return st.PruneBackups, nil
		}
	}
	return "", fmt.Errorf("storage %q is not configured", storage)
}
