package safety

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// Effect is what a call would do, as the gate classified it.
type Effect struct {
	// Destructive: it destroys or overwrites a guest or data that the run
	// did not create (or the classifier does not know the call).
	Destructive bool
	// Guest is the vmid it acts on; 0 when none.
	Guest int
	// What says in words what would be done ("delete guest 100 (purge)").
	What string
	// Rule names the rule that decided, for the audit ("delete-guest",
	// "own-guest", "unknown").
	Rule string
}

// Facts are the reads the classifier needs about the host: whether a vmid
// is taken, and a guest's backups. Reads only.
type Facts interface {
	// GuestExists reports whether vmid is taken anywhere in the cluster.
	GuestExists(ctx context.Context, vmid int) (bool, error)
	// BackupStorages returns the node's active storages that hold backups.
	BackupStorages(ctx context.Context) ([]string, error)
	// StorageBackups returns the backups of vmid on one storage.
	StorageBackups(ctx context.Context, storage string, vmid int) ([]proxmox.Volume, error)
	// Retention returns a storage's prune-backups setting ("" for none).
	Retention(ctx context.Context, storage string) (string, error)
	// MountPoint returns container vmid's config value of key (mpN), ""
	// when it has none.
	MountPoint(ctx context.Context, vmid int, key string) (string, error)
}

// Record is what the run's own record says it created: the guests its
// tasks created and the snapshots its tasks took (tasks that ended OK: a
// snapshot task that failed took nothing). It comes from the tasks the run
// started, never from a parameter, the hub or the playbook.
type Record interface {
	CreatedGuest(vmid int) bool
	TookSnapshot(vmid int, name string) bool
	StartedTask(upid string) bool
}

// Policy is the configuration the classifier applies.
type Policy struct {
	// MinBackups is safety.min_backups: deleting one of a guest's newest
	// MinBackups backups (or pruning below that many) is destructive.
	// 0 means 1.
	MinBackups int
	// Scratch is safety.scratch_vmids: guests that count as the run's own
	// (a self-test guest), so that rolling them back is benign.
	Scratch []int
}

func (p Policy) minBackups() int {
	if p.MinBackups <= 0 {
		return 1
	}
	return p.MinBackups
}

// classifier is one classification, with what it may look up.
type classifier struct {
	ctx    context.Context
	policy Policy
	rec    Record
	facts  Facts
	// storages is the run's list of the node's backup storages (see
	// [Gate.backupStorages]); nil reads it afresh.
	storages func(context.Context) ([]string, error)
}

// own reports whether vmid is the run's own: created by it, or scratch.
func (c *classifier) own(vmid int) bool {
	return c.rec.CreatedGuest(vmid) || slices.Contains(c.policy.Scratch, vmid)
}

// guarded returns a destructive effect on vmid, unless the run owns vmid.
func (c *classifier) guarded(vmid int, rule, what string) Effect {
	if c.own(vmid) {
		return Effect{Guest: vmid, What: what, Rule: "own-guest:" + rule}
	}
	return Effect{Destructive: true, Guest: vmid, What: what, Rule: rule}
}

var (
	createPath  = regexp.MustCompile(`^/nodes/[^/]+/(lxc|qemu)$`)
	guestPath   = regexp.MustCompile(`^/nodes/[^/]+/(lxc|qemu)/(\d+)(/.*)?$`)
	contentPath = regexp.MustCompile(`^/nodes/[^/]+/storage/([^/]+)/content/(.+)$`)
	prunePath   = regexp.MustCompile(`^/nodes/[^/]+/storage/([^/]+)/prunebackups$`)
	taskPath    = regexp.MustCompile(`^/nodes/[^/]+/tasks/(.+)$`)
	vzdumpPath  = regexp.MustCompile(`^/nodes/[^/]+/vzdump$`)
	diskKey     = regexp.MustCompile(`^(rootfs|mp\d+|unused\d+|scsi\d+|virtio\d+|sata\d+|ide\d+|efidisk\d+|tpmstate\d+)$`)
)

// classifyMutation classifies one API mutation. An error means a fact it
// needs could not be read: the gate then treats the call as destructive.
func (c *classifier) classifyMutation(m proxmox.Mutation) (Effect, error) {
	p := m.Params
	if p == nil {
		p = url.Values{}
	}
	switch {
	case m.Method == "POST" && createPath.MatchString(m.Path):
		vmid, _ := strconv.Atoi(p.Get("vmid"))
		kind := createPath.FindStringSubmatch(m.Path)[1]
		restore := p.Get("restore") == "1" || p.Get("archive") != ""
		verb := "create"
		if restore {
			verb = "restore " + archiveOf(p)
		}
		if p.Get("force") == "1" {
			// force overwrites whatever holds the vmid.
			return c.guarded(vmid, "overwrite-guest", fmt.Sprintf("%s %s %d over the existing guest (force)", verb, kind, vmid)), nil
		}
		return Effect{Guest: vmid, What: fmt.Sprintf("%s new %s %d", verb, kind, vmid), Rule: "create"}, nil

	case guestPath.MatchString(m.Path):
		g := guestPath.FindStringSubmatch(m.Path)
		vmid, _ := strconv.Atoi(g[2])
		return c.classifyGuest(m.Method, g[1], vmid, g[3], p), nil

	case m.Method == "POST" && vzdumpPath.MatchString(m.Path):
		what := "back up " + orAll(p)
		if p.Get("remove") == "0" { // absent: PVE's default is to prune

			return Effect{What: what, Rule: "backup"}, nil
		}
		keep := p.Get("prune-backups")
		if keep == "" {
			var err error
			if keep, err = c.facts.Retention(c.ctx, p.Get("storage")); err != nil {
				return Effect{Destructive: true, What: what + " and prune", Rule: "prune-unknown"}, err
			}
		}
		if keeps(keep) >= c.policy.minBackups() {
			return Effect{What: what + " and prune within policy (" + keep + ")", Rule: "prune-within-policy"}, nil
		}
		return Effect{Destructive: true, What: what + " and prune to " + orNone(keep), Rule: "prune-below-minimum"}, nil

	case m.Method == "DELETE" && prunePath.MatchString(m.Path):
		keep := p.Get("prune-backups")
		vmid, _ := strconv.Atoi(p.Get("vmid"))
		if keep == "" {
			var err error
			if keep, err = c.facts.Retention(c.ctx, prunePath.FindStringSubmatch(m.Path)[1]); err != nil {
				return Effect{Destructive: true, Guest: vmid, What: "prune backups", Rule: "prune-unknown"}, err
			}
		}
		if keeps(keep) >= c.policy.minBackups() {
			return Effect{Guest: vmid, What: "prune backups within policy (" + keep + ")", Rule: "prune-within-policy"}, nil
		}
		return Effect{Destructive: true, Guest: vmid, What: "prune backups to " + orNone(keep), Rule: "prune-below-minimum"}, nil

	case m.Method == "DELETE" && contentPath.MatchString(m.Path):
		return c.classifyVolume(contentPath.FindStringSubmatch(m.Path)[2])

	case m.Method == "PUT" && contentPath.MatchString(m.Path):
		// Content.pm updateattributes: notes only add words to an
		// archive (a restore drill's verdict); lifting a protection
		// lets a prune or a delete destroy it.
		volid := contentPath.FindStringSubmatch(m.Path)[2]
		if p.Has("protected") && p.Get("protected") != "1" {
			return Effect{Destructive: true, What: "unprotect " + volid, Rule: "unprotect-volume"}, nil
		}
		return Effect{What: "set the notes of " + volid, Rule: "volume-attributes"}, nil

	case m.Method == "DELETE" && taskPath.MatchString(m.Path):
		upid := taskPath.FindStringSubmatch(m.Path)[1]
		if c.rec.StartedTask(upid) {
			return Effect{What: "stop the run's own task " + upid, Rule: "stop-own-task"}, nil
		}
		return Effect{Destructive: true, What: "stop task " + upid + ", which this run did not start", Rule: "stop-other-task"}, nil
	}
	return Effect{Destructive: true, What: m.Method + " " + m.Path, Rule: "unknown"}, nil
}

// classifyGuest classifies a mutation below /nodes/N/KIND/VMID.
func (c *classifier) classifyGuest(method, kind string, vmid int, rest string, p url.Values) Effect {
	switch {
	case method == "DELETE" && rest == "":
		what := fmt.Sprintf("delete %s %d", kind, vmid)
		if p.Get("purge") == "1" {
			what += " (purge)"
		}
		return c.guarded(vmid, "delete-guest", what)
	case method == "POST" && strings.HasPrefix(rest, "/status/"):
		action := strings.TrimPrefix(rest, "/status/")
		switch action {
		case "start", "stop", "shutdown", "reboot", "suspend", "resume":
			return Effect{Guest: vmid, What: fmt.Sprintf("%s %s %d", action, kind, vmid), Rule: "power"}
		}
	case method == "POST" && rest == "/snapshot":
		return Effect{Guest: vmid, What: fmt.Sprintf("snapshot %s %d as %q", kind, vmid, p.Get("snapname")), Rule: "snapshot"}
	case method == "POST" && strings.HasPrefix(rest, "/snapshot/") && strings.HasSuffix(rest, "/rollback"):
		name := strings.TrimSuffix(strings.TrimPrefix(rest, "/snapshot/"), "/rollback")
		// Even a snapshot the run took: rolling back discards what the
		// guest wrote since.
		return c.guarded(vmid, "rollback", fmt.Sprintf("roll %s %d back to snapshot %q (discards every change since)", kind, vmid, name))
	case method == "DELETE" && strings.HasPrefix(rest, "/snapshot/") && strings.Count(rest, "/") == 2:
		name := strings.TrimPrefix(rest, "/snapshot/")
		what := fmt.Sprintf("delete snapshot %q of %s %d", name, kind, vmid)
		if c.rec.TookSnapshot(vmid, name) {
			return Effect{Guest: vmid, What: what, Rule: "own-snapshot"}
		}
		return c.guarded(vmid, "delete-snapshot", what)
	case (method == "PUT" || method == "POST") && rest == "/config":
		var disks []string
		for _, k := range strings.Split(p.Get("delete"), ",") {
			if diskKey.MatchString(k) {
				disks = append(disks, k)
			}
		}
		if len(disks) > 0 {
			return c.guarded(vmid, "detach-disk", fmt.Sprintf("detach or delete disk %s of %s %d", strings.Join(disks, ", "), kind, vmid))
		}
		return Effect{Guest: vmid, What: fmt.Sprintf("configure %s %d (%s)", kind, vmid, configKeys(p)), Rule: "configure"}
	}
	return Effect{Destructive: true, Guest: vmid, What: fmt.Sprintf("%s %s/%d%s", method, kind, vmid, rest), Rule: "unknown"}
}

// classifyVolume classifies deleting a volume: a backup is benign unless it
// is one of its guest's newest MinBackups backups on the node (see
// [classifier.classifyBackup]); a guest's disk is benign only when the
// run created the guest; anything else is destructive.
func (c *classifier) classifyVolume(volid string) (Effect, error) {
	what := "delete volume " + volid
	if vmid, ok := backupVMID(volid); ok {
		return c.backupEffect(what, vmid, volid)
	}
	if vmid, ok := diskVMID(volid); ok {
		return c.guarded(vmid, "delete-disk", what), nil
	}
	return Effect{Destructive: true, What: what, Rule: "delete-volume"}, nil
}

// classifyRoot classifies a changing root command.
func (c *classifier) classifyRoot(op proxmox.RootOp) (Effect, error) {
	switch op.Op {
	case "host.mount_usb":
		return Effect{What: "mount " + strings.Join(op.Argv[len(op.Argv)-2:], " on "), Rule: "mount"}, nil
	case "host.attach_bootstrap":
		// pct set VMID --mpN HOSTDIR,mp=PATH,ro=1,shared=1: benign on a free slot or
		// over the same bootstrap mount; replacing another mount point
		// detaches it.
		if len(op.Argv) < 5 {
			break
		}
		key := strings.TrimPrefix(op.Argv[3], "--")
		hostDir, _, _ := strings.Cut(op.Argv[4], ",")
		what := fmt.Sprintf("attach the bootstrap directory read-only to container %d as %s", op.VMID, key)
		cur, err := c.facts.MountPoint(c.ctx, op.VMID, key)
		if err != nil {
			return Effect{Destructive: true, Guest: op.VMID, What: what, Rule: "attach-unknown"}, err
		}
		if curDir, _, _ := strings.Cut(cur, ","); cur == "" || curDir == hostDir {
			return Effect{Guest: op.VMID, What: what, Rule: "attach-bootstrap"}, nil
		}
		return c.guarded(op.VMID, "detach-disk", what+", replacing "+cur), nil
	case "host.create_golden":
		// pct create refuses a taken vmid; a free one becomes the run's.
		taken, err := c.facts.GuestExists(c.ctx, op.VMID)
		if err != nil {
			return Effect{Destructive: true, Guest: op.VMID, What: "create golden container", Rule: "create-unknown"}, err
		}
		if taken {
			return c.guarded(op.VMID, "overwrite-guest", fmt.Sprintf("create golden container %d over an existing guest", op.VMID)), nil
		}
		return Effect{Guest: op.VMID, What: fmt.Sprintf("create golden container %d", op.VMID), Rule: "create"}, nil
	}
	return Effect{Destructive: true, Guest: op.VMID, What: "root command " + op.Op, Rule: "unknown"}, nil
}

var (
	backupFile = regexp.MustCompile(`^[^:]+:backup/vzdump-(?:lxc|qemu|openvz)-(\d+)-`)
	backupPBS  = regexp.MustCompile(`^[^:]+:backup/(?:ct|vm)/(\d+)/`)
	diskVol    = regexp.MustCompile(`^[^:]+:(?:\d+/)?(?:vm|base|subvol)-(\d+)-disk-\d+`)
)

func backupVMID(volid string) (int, bool) {
	for _, re := range []*regexp.Regexp{backupFile, backupPBS} {
		if m := re.FindStringSubmatch(volid); m != nil {
			n, err := strconv.Atoi(m[1])
			return n, err == nil
		}
	}
	return 0, false
}

func diskVMID(volid string) (int, bool) {
	if m := diskVol.FindStringSubmatch(volid); m != nil {
		n, err := strconv.Atoi(m[1])
		return n, err == nil
	}
	return 0, false
}

// keeps is how many backups a prune-backups setting keeps at the least:
// keep-all keeps all (a large number); otherwise the sum of the keep-*
// counts (each counts backups in a different period, so the newest of
// them all survive). No setting, as PVE reads it, keeps all.
func keeps(setting string) int {
	if strings.TrimSpace(setting) == "" {
		return 1 << 30
	}
	n := 0
	for _, part := range strings.Split(setting, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		if k == "keep-all" && v == "1" {
			return 1 << 30
		}
		if strings.HasPrefix(k, "keep-") {
			i, _ := strconv.Atoi(v)
			n += i
		}
	}
	return n
}

func archiveOf(p url.Values) string {
	if a := p.Get("archive"); a != "" {
		return a
	}
	return p.Get("ostemplate")
}

func orAll(p url.Values) string {
	if p.Get("all") == "1" {
		return "every guest"
	}
	return "guest " + p.Get("vmid")
}

func orNone(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

func configKeys(p url.Values) string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return strings.Join(keys, ", ")
}
