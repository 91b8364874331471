package proxmox

import (
	"context"
	"net/url"
	"strconv"
	"strings"
)

type wireStorage struct {
	Storage      text       `json:"storage"`
	Type         text       `json:"type"`
	Content      stringList `json:"content"`
	Path         text       `json:"path"`
	Shared       flag       `json:"shared"`
	Enabled      *flag      `json:"enabled"` // node view only
	Disable      flag       `json:"disable"` // configuration view only
	Active       flag       `json:"active"`
	Total        num        `json:"total"`
	Used         num        `json:"used"`
	Avail        num        `json:"avail"`
	PruneBackups text       `json:"prune-backups"`
}

func (w wireStorage) storage() Storage {
	s := Storage{
		Storage: string(w.Storage), Type: string(w.Type), Content: w.Content,
		Path: string(w.Path), Shared: bool(w.Shared), Active: bool(w.Active),
		Total: w.Total.toUint64(), Used: w.Used.toUint64(), Avail: w.Avail.toUint64(),
		PruneBackups: string(w.PruneBackups),
	}
	// The configuration (GET /storage) says "disable: 1" for a disabled
	// storage and nothing otherwise; the node view says "enabled".
	if w.Enabled != nil {
		s.Enabled = bool(*w.Enabled)
	} else {
		s.Enabled = !bool(w.Disable)
	}
	return s
}

func (c *Client) storages(ctx context.Context, p apiPath) ([]Storage, error) {
	var ws []wireStorage
	if err := c.get(ctx, p, nil, &ws); err != nil {
		return nil, err
	}
	out := make([]Storage, 0, len(ws))
	for _, w := range ws {
		out = append(out, w.storage())
	}
	return out, nil
}

// Storages lists the cluster's storage configuration (GET /storage):
// types, content, paths and retention, no usage.
func (c *Client) Storages(ctx context.Context) ([]Storage, error) {
	return c.storages(ctx, pathOf("storage"))
}

// NodeStorages lists the storages the managed node can use, with usage and
// state (GET /nodes/{node}/storage).
func (c *Client) NodeStorages(ctx context.Context) ([]Storage, error) {
	return c.storages(ctx, c.nodePath("storage"))
}

// StorageContent lists the volumes on one storage of the managed node
// (GET /nodes/{node}/storage/{storage}/content). content ("backup",
// "vztmpl", ...) and vmid narrow the list; "" and 0 do not filter.
func (c *Client) StorageContent(ctx context.Context, storage, content string, vmid int) ([]Volume, error) {
	if err := needStorageID("storage", storage); err != nil {
		return nil, err
	}
	q := url.Values{}
	if content != "" {
		q.Set("content", content)
	}
	if vmid != 0 {
		if err := needVMID(vmid); err != nil {
			return nil, err
		}
		q.Set("vmid", strconv.Itoa(vmid))
	}
	var ws []struct {
		VolID     text `json:"volid"`
		Content   text `json:"content"`
		Format    text `json:"format"`
		Subtype   text `json:"subtype"`
		VMID      num  `json:"vmid"`
		Size      num  `json:"size"`
		CTime     num  `json:"ctime"`
		Notes     text `json:"notes"`
		Protected flag `json:"protected"`
		// Verification is PBS's {"state": "ok", "upid": ...}.
		Verification struct {
			State text `json:"state"`
		} `json:"verification"`
		Encrypted text `json:"encrypted"`
	}
	if err := c.get(ctx, c.nodePath("storage", storage, "content"), q, &ws); err != nil {
		return nil, err
	}
	out := make([]Volume, 0, len(ws))
	for _, w := range ws {
		out = append(out, Volume{
			VolID: string(w.VolID), Content: string(w.Content), Format: string(w.Format),
			Subtype: string(w.Subtype), VMID: w.VMID.toInt(), Size: w.Size.toUint64(),
			CTime: w.CTime.toTime(), Notes: string(w.Notes), Protected: bool(w.Protected),
			Verification: string(w.Verification.State), Encrypted: string(w.Encrypted),
		})
	}
	return out, nil
}

// VolumeNotes is the whole notes of backup archive volid
// (GET /nodes/{node}/storage/{storage}/content/{volid}, Content.pm info;
// a listing carries only their first line). "" when it has none.
func (c *Client) VolumeNotes(ctx context.Context, volid string) (string, error) {
	storage, name, ok := strings.Cut(volid, ":")
	if !ok || name == "" {
		return "", paramError("volume", volid, "is not a volume id (STORAGE:PATH)")
	}
	if err := needStorageID("volume", storage); err != nil {
		return "", err
	}
	var w struct {
		Notes text `json:"notes"`
	}
	if err := c.get(ctx, c.nodePath("storage", storage, "content", volid), nil, &w); err != nil {
		return "", err
	}
	return string(w.Notes), nil
}
