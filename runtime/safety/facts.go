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

// Backups implements [Facts]: every active storage of the node that holds
// backups.
func (f ClientFacts) Backups(ctx context.Context, vmid int) ([]proxmox.Volume, error) {
	sts, err := f.C.NodeStorages(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing the node's storages: %w", err)
	}
	var out []proxmox.Volume
	for _, st := range sts {
		if !slices.Contains(st.Content, "backup") || !st.Active {
			continue
		}
		vols, err := f.C.StorageContent(ctx, st.Storage, "backup", vmid)
		if err != nil {
			return nil, fmt.Errorf("listing the backups on %s: %w", st.Storage, err)
		}
		for _, v := range vols {
			if v.VMID == vmid {
				out = append(out, v)
			}
		}
	}
	return out, nil
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
