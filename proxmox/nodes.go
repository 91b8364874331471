package proxmox

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"slices"
)

// Version returns the API version (GET /version).
func (c *Client) Version(ctx context.Context) (Version, error) {
	return c.version(ctx, pathOf("version"))
}

// NodeVersion returns the API version as this Client's node answers it
// (GET /nodes/{node}/version; pve-manager PVE/API2/Nodes.pm "version": any
// user, proxied to the node). It costs what Version costs, and also says
// whether the host has the node: for one it has not, PVE answers 500 "no
// such cluster node 'NAME'" (IsUnknownNode).
func (c *Client) NodeVersion(ctx context.Context) (Version, error) {
	return c.version(ctx, c.nodePath("version"))
}

func (c *Client) version(ctx context.Context, p apiPath) (Version, error) {
	var w struct {
		Version text `json:"version"`
		Release text `json:"release"`
		RepoID  text `json:"repoid"`
	}
	if err := c.get(ctx, p, nil, &w); err != nil {
		return Version{}, err
	}
	return Version{Version: string(w.Version), Release: string(w.Release), RepoID: string(w.RepoID)}, nil
}

type wireNode struct {
	Node    text `json:"node"`
	Status  text `json:"status"`
	CPU     num  `json:"cpu"`
	MaxCPU  num  `json:"maxcpu"`
	Mem     num  `json:"mem"`
	MaxMem  num  `json:"maxmem"`
	Disk    num  `json:"disk"`
	MaxDisk num  `json:"maxdisk"`
	Uptime  num  `json:"uptime"`
}

// Nodes lists the cluster's nodes (GET /nodes); a single host lists itself.
func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	var ws []wireNode
	if err := c.get(ctx, pathOf("nodes"), nil, &ws); err != nil {
		return nil, err
	}
	out := make([]Node, 0, len(ws))
	for _, w := range ws {
		out = append(out, Node{
			Node: string(w.Node), Status: string(w.Status),
			CPU: w.CPU.toFloat(), MaxCPU: w.MaxCPU.toInt(),
			Mem: w.Mem.toUint64(), MaxMem: w.MaxMem.toUint64(),
			Disk: w.Disk.toUint64(), MaxDisk: w.MaxDisk.toUint64(),
			Uptime: w.Uptime.toInt64(),
		})
	}
	return out, nil
}

type wireUsage struct {
	Total num `json:"total"`
	Used  num `json:"used"`
	Free  num `json:"free"`
}

func (w wireUsage) usage() Usage {
	return Usage{Total: w.Total.toUint64(), Used: w.Used.toUint64(), Free: w.Free.toUint64()}
}

// NodeStatus returns the managed node's status (GET /nodes/{node}/status).
func (c *Client) NodeStatus(ctx context.Context) (NodeStatus, error) {
	var w struct {
		CPU     num `json:"cpu"`
		CPUInfo struct {
			CPUs num `json:"cpus"`
		} `json:"cpuinfo"`
		LoadAvg    []num     `json:"loadavg"`
		Memory     wireUsage `json:"memory"`
		RootFS     wireUsage `json:"rootfs"`
		Swap       wireUsage `json:"swap"`
		Uptime     num       `json:"uptime"`
		Kernel     text      `json:"kversion"`
		PVEVersion text      `json:"pveversion"`
	}
	if err := c.get(ctx, c.nodePath("status"), nil, &w); err != nil {
		return NodeStatus{}, err
	}
	s := NodeStatus{
		CPU:        w.CPU.toFloat(),
		CPUs:       w.CPUInfo.CPUs.toInt(),
		Memory:     w.Memory.usage(),
		RootFS:     w.RootFS.usage(),
		Swap:       w.Swap.usage(),
		Uptime:     w.Uptime.toInt64(),
		Kernel:     string(w.Kernel),
		PVEVersion: string(w.PVEVersion),
	}
	for i := 0; i < len(w.LoadAvg) && i < len(s.LoadAvg); i++ {
		s.LoadAvg[i] = w.LoadAvg[i].toFloat()
	}
	return s, nil
}

// resourceTypes are the values GET /cluster/resources accepts for type.
var resourceTypes = []string{"vm", "storage", "node", "sdn"}

// ClusterResources lists the cluster's resources (GET /cluster/resources),
// all of them when typ is "", else only "vm", "storage", "node" or "sdn".
func (c *Client) ClusterResources(ctx context.Context, typ string) ([]Resource, error) {
	q := url.Values{}
	if typ != "" {
		if !slices.Contains(resourceTypes, typ) {
			return nil, paramError("type", typ, fmt.Sprintf("is not one of %v", resourceTypes))
		}
		q.Set("type", typ)
	}
	var ws []struct {
		ID       text `json:"id"`
		Type     text `json:"type"`
		Node     text `json:"node"`
		Name     text `json:"name"`
		Status   text `json:"status"`
		Storage  text `json:"storage"`
		VMID     num  `json:"vmid"`
		CPU      num  `json:"cpu"`
		MaxCPU   num  `json:"maxcpu"`
		Mem      num  `json:"mem"`
		MaxMem   num  `json:"maxmem"`
		Disk     num  `json:"disk"`
		MaxDisk  num  `json:"maxdisk"`
		Uptime   num  `json:"uptime"`
		Template flag `json:"template"`
		Lock     text `json:"lock"`
		HAState  text `json:"hastate"`
	}
	if err := c.get(ctx, pathOf("cluster", "resources"), q, &ws); err != nil {
		return nil, err
	}
	out := make([]Resource, 0, len(ws))
	for _, w := range ws {
		out = append(out, Resource{
			ID: string(w.ID), Type: string(w.Type), Node: string(w.Node), Name: string(w.Name),
			Status: string(w.Status), Storage: string(w.Storage), VMID: w.VMID.toInt(),
			CPU: w.CPU.toFloat(), MaxCPU: w.MaxCPU.toFloat(),
			Mem: w.Mem.toUint64(), MaxMem: w.MaxMem.toUint64(),
			Disk: w.Disk.toUint64(), MaxDisk: w.MaxDisk.toUint64(),
			Uptime: w.Uptime.toInt64(), Template: bool(w.Template),
			Lock: string(w.Lock), HAState: string(w.HAState),
		})
	}
	return out, nil
}

// NextID returns the next free guest id (GET /cluster/nextid). PVE sends
// it as a JSON string although its schema says integer; both are accepted.
func (c *Client) NextID(ctx context.Context) (int, error) {
	var n num
	if err := c.get(ctx, pathOf("cluster", "nextid"), nil, &n); err != nil {
		return 0, err
	}
	id := n.toInt()
	if id < MinVMID || id > MaxVMID {
		return 0, fmt.Errorf("GET /cluster/nextid: %q is not a guest id", string(n))
	}
	return id, nil
}

// Disks lists the managed node's disks (GET /nodes/{node}/disks/list).
func (c *Client) Disks(ctx context.Context) ([]Disk, error) {
	var ws []struct {
		DevPath text `json:"devpath"`
		Model   text `json:"model"`
		Serial  text `json:"serial"`
		Vendor  text `json:"vendor"`
		Type    text `json:"type"`
		Health  text `json:"health"`
		WWN     text `json:"wwn"`
		Used    text `json:"used"`
		Size    num  `json:"size"`
		RPM     num  `json:"rpm"`
		GPT     flag `json:"gpt"`
	}
	if err := c.get(ctx, c.nodePath("disks", "list"), nil, &ws); err != nil {
		return nil, err
	}
	out := make([]Disk, 0, len(ws))
	for _, w := range ws {
		out = append(out, Disk{
			DevPath: string(w.DevPath), Model: string(w.Model), Serial: string(w.Serial),
			Vendor: string(w.Vendor), Type: string(w.Type), Health: string(w.Health),
			WWN: string(w.WWN), Used: string(w.Used), Size: w.Size.toUint64(),
			RPM: w.RPM.toInt(), GPT: bool(w.GPT),
		})
	}
	return out, nil
}

// diskPathPattern is the disk parameter's pattern in PVE's schema.
var diskPathPattern = regexp.MustCompile(`^/dev/[a-zA-Z0-9/]+$`)

// DiskSMART returns PVE's SMART summary of one disk of the managed node
// (GET /nodes/{node}/disks/smart?disk=DEVPATH), e.g. devpath "/dev/sda".
func (c *Client) DiskSMART(ctx context.Context, devpath string) (SMARTData, error) {
	if !diskPathPattern.MatchString(devpath) {
		return SMARTData{}, paramError("disk", devpath, "is not a device path (/dev/...)")
	}
	var w struct {
		Health     text `json:"health"`
		Type       text `json:"type"`
		Text       text `json:"text"`
		Attributes []struct {
			ID        text `json:"id"`
			Name      text `json:"name"`
			Value     text `json:"value"`
			Worst     text `json:"worst"`
			Threshold text `json:"threshold"`
			Raw       text `json:"raw"`
			Flags     text `json:"flags"`
			Fail      text `json:"fail"`
		} `json:"attributes"`
	}
	if err := c.get(ctx, c.nodePath("disks", "smart"), url.Values{"disk": {devpath}}, &w); err != nil {
		return SMARTData{}, err
	}
	d := SMARTData{Health: string(w.Health), Type: string(w.Type), Text: string(w.Text)}
	for _, a := range w.Attributes {
		d.Attributes = append(d.Attributes, SMARTAttribute{
			ID: smartInt(a.ID), Name: string(a.Name), Value: smartInt(a.Value), Worst: smartInt(a.Worst),
			Threshold: smartInt(a.Threshold), Raw: string(a.Raw), Flags: string(a.Flags), Fail: string(a.Fail),
		})
	}
	return d, nil
}

// smartInt reads a SMART table number. smartctl prints "---" for some
// thresholds, which PVE may pass on; anything not a number counts as 0.
func smartInt(t text) int {
	n, err := parseInt(string(t))
	if err != nil {
		return 0
	}
	return n
}
