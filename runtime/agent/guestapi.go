package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"gitea.dooplex.hu/admin/felhom-agent/internal/selfsigned"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/guestapi"
)

// The guest API's wiring: the listeners and certificate (New), the
// tokens (kept hashed in the store, cached in memory, minted here), the
// bootstrap files, and guestBackend, which answers runtime/guestapi from
// Proxmox, the run store and the one start path.

// Files in the state directory.
const (
	// GuestCertFile and GuestKeyFile are the guest API's certificate and
	// key (PEM, 0600), made at the first start with a guest API.
	GuestCertFile = "guest-api.crt"
	GuestKeyFile  = "guest-api.key"
	// GuestsDir holds one directory per guest with its bootstrap file:
	// GuestsDir/VMID/BootstrapFile (directories 0700, the file 0600).
	GuestsDir     = "guests"
	BootstrapFile = "bootstrap.json"
	// BootstrapMountPath is where a guest sees its bootstrap directory.
	BootstrapMountPath = proxmox.BootstrapMountPath
)

// The triggers the guest API starts; playbooks offer them to guests with
// guest_triggers.
const (
	GuestTriggerBackup = "backup"
	GuestTriggerReboot = "guest_reboot"
)

// GuestReader is what the guest API reads of Proxmox (*proxmox.Client
// implements it): the guests and their kinds, one guest's config and
// status, and task logs (vzdump's says when the snapshot exists).
type GuestReader interface {
	Guests(ctx context.Context) ([]proxmox.Guest, error)
	GuestConfig(ctx context.Context, kind proxmox.GuestKind, vmid int) (proxmox.GuestConfig, error)
	GuestStatus(ctx context.Context, kind proxmox.GuestKind, vmid int) (proxmox.GuestStatus, error)
	TaskLog(ctx context.Context, upid proxmox.UPID, start, limit int) ([]proxmox.LogLine, error)
	backupLister // a guest's restore drills recorded on its archives
	// SetGuestIdentity records a container's token hash in its
	// description, where another node's agent finds it after a
	// migration (guestidentity.go).
	SetGuestIdentity(ctx context.Context, id proxmox.GuestIdentity) error
}

var _ GuestReader = (*proxmox.Client)(nil)

// BootstrapAttacher attaches a guest's bootstrap directory to it
// read-only (*proxmox.Privileged implements it: a fenced root operation,
// since a bind mount of a host path needs root@pam).
type BootstrapAttacher interface {
	AttachReadOnly(ctx context.Context, vmid, slot int, hostDir, guestPath string) error
}

// GuestAPIConfig configures the guest API (runtime/guestapi, docs/guest-api.md).
type GuestAPIConfig struct {
	// Listen are the HTTPS addresses, typically the host's bridge
	// address with port 8443; at least one.
	Listen []string
	// Endpoint is the "host:port" bootstrap files give guests; "" means
	// Listen[0] (with the bound port, when that was 0).
	Endpoint string
	// Proxmox reads the guests; required.
	Proxmox GuestReader
	// Attach attaches bootstrap directories to their guests; nil writes
	// the files and attaches nothing (privileged operations are off).
	Attach BootstrapAttacher
	// HubURL goes into bootstrap files when set.
	HubURL string
	// Limits are the per-guest rate, in-flight and body limits; zero
	// fields mean runtime/guestapi's defaults. Its Logger is the agent's.
	Limits guestapi.Options
}

// guestAPI is the agent's guest API state.
type guestAPI struct {
	cfg         *GuestAPIConfig
	lns         []net.Listener
	cert        tls.Certificate
	fingerprint string
	endpoint    string

	mu     sync.Mutex
	tokens map[[32]byte]int     // hash -> vmid; the store is the truth, every write goes through mint
	snaps  map[string]time.Time // run id -> when its vzdump log showed the snapshot
	seen   map[string]int64     // run id -> its log read so far, until the snapshot shows
	minted sync.Mutex           // one mint at a time

	adopt   sync.Mutex         // one adoption scan at a time; guards marks and scanned
	marks   map[[32]byte][]int // the last scan's identity lines: hash -> containers
	scanned time.Time          // when marks was read

	bootDirs sync.Mutex        // one bootstrap-directory pass at a time; guards noMount
	noMount  map[int]time.Time // containers last read without the bootstrap mount
}

// newGuestAPI loads (or makes) the certificate, binds the listeners and
// loads the token hashes. The store is open.
func (a *Agent) newGuestAPI(cfg *GuestAPIConfig) error {
	if len(cfg.Listen) == 0 {
		return errors.New("guest_api.listen: no address")
	}
	if cfg.Proxmox == nil {
		return errors.New("guest API: no Proxmox client")
	}
	g := &guestAPI{cfg: cfg, tokens: map[[32]byte]int{}, snaps: map[string]time.Time{}, seen: map[string]int64{}}
	cert, fp, err := loadGuestCert(a.cfg.StateDir)
	if err != nil {
		return err
	}
	g.cert, g.fingerprint = cert, fp
	for _, addr := range cfg.Listen {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			g.close()
			return fmt.Errorf("guest_api.listen %s: %w", addr, err)
		}
		g.lns = append(g.lns, ln)
	}
	g.endpoint = cfg.Endpoint
	if g.endpoint == "" {
		g.endpoint = g.lns[0].Addr().String()
	}
	toks, err := a.store.GuestTokens(context.Background())
	if err != nil {
		g.close()
		return err
	}
	for _, t := range toks {
		g.tokens[t.Hash] = t.VMID
	}
	a.guest = g
	return nil
}

func (g *guestAPI) close() {
	for _, ln := range g.lns {
		ln.Close()
	}
}

// GuestAPIAddrs are the guest API's bound addresses (useful with port 0).
func (a *Agent) GuestAPIAddrs() []net.Addr {
	if a.guest == nil {
		return nil
	}
	var out []net.Addr
	for _, ln := range a.guest.lns {
		out = append(out, ln.Addr())
	}
	return out
}

// GuestAPIFingerprint is the SHA-256 pin of the guest API's certificate,
// "AB:CD:…"; "" without a guest API.
func (a *Agent) GuestAPIFingerprint() string {
	if a.guest == nil {
		return ""
	}
	return a.guest.fingerprint
}

// loadGuestCert reads the guest API's certificate from dir, making and
// saving one (key 0600) at the first start.
func loadGuestCert(dir string) (tls.Certificate, string, error) {
	certPath, keyPath := filepath.Join(dir, GuestCertFile), filepath.Join(dir, GuestKeyFile)
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	switch {
	case err == nil:
	case errors.Is(err, os.ErrNotExist):
		c, der, err := selfsigned.Certificate(time.Now(), pkix.Name{CommonName: "felhom-agent guest API"})
		if err != nil {
			return tls.Certificate{}, "", fmt.Errorf("guest API certificate: %w", err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
		if err != nil {
			return tls.Certificate{}, "", fmt.Errorf("guest API certificate: %w", err)
		}
		// The key first: a certificate without its key is never left behind.
		if err := writeFileAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
			return tls.Certificate{}, "", fmt.Errorf("guest API key: %w", err)
		}
		if err := writeFileAtomic(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
			return tls.Certificate{}, "", fmt.Errorf("guest API certificate: %w", err)
		}
		cert = c
	default:
		return tls.Certificate{}, "", fmt.Errorf("guest API certificate %s: %w (move both files aside to make a new one; guests must then get new bootstrap files)", certPath, err)
	}
	sum := sha256.Sum256(cert.Certificate[0])
	return cert, proxmox.FormatFingerprint(sum[:]), nil
}

// writeFileAtomic writes path through a synced temporary file and a
// rename: readers see the old file or the new one, never half of one.
// prep, when set, runs on the temporary file's path before the rename.
func writeFileAtomic(path string, data []byte, mode os.FileMode, prep ...func(string) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	for _, p := range prep {
		if err := p(tmp.Name()); err != nil {
			tmp.Close()
			return err
		}
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// GuestToken is a freshly minted token and where it was delivered.
type GuestToken struct {
	VMID int
	// Token is the bearer token: shown once, never stored.
	// "" when the guest kept its token (EnsureGuestBootstrap).
	Token string
	// Bootstrap is the bootstrap file's path on the host.
	Bootstrap string
	// Mount is the container's mount point key that attaches it (e.g.
	// "mp9"), or "" when nothing was attached (privileged operations
	// off, or it was attached already).
	Mount string
	// Attached: the bootstrap directory is attached to the guest.
	Attached bool
	// Identity: the token's identity line was written into the guest's
	// description now.
	Identity bool
	// rewritten: the file was written now.
	rewritten bool
}

// errGuestAPIOff is the refusal when the agent serves no guest API.
var errGuestAPIOff = errors.New("the guest API is off (guest_api.listen is empty)")

// MintGuestToken gives guest vmid a new token (the old one, if any,
// stops answering at once), rewrites its bootstrap file and makes sure
// the file's directory is attached to the guest read-only. Containers
// only: a VM has no bind mounts to carry the file.
func (a *Agent) MintGuestToken(ctx context.Context, vmid int) (GuestToken, error) {
	g := a.guest
	if g == nil {
		return GuestToken{}, errGuestAPIOff
	}
	g.minted.Lock()
	defer g.minted.Unlock()
	return a.deliverBootstrap(ctx, vmid, "")
}

// EnsureGuestBootstrap makes sure guest vmid has an intact bootstrap file,
// attached: a file whose token is the guest's current one is kept with
// that token (rewritten only when what else it says — address, pin,
// customer, hub — changed, attached only when it is not); a missing,
// unreadable or stale file, or a guest without a token, gets a new token
// as MintGuestToken. changed says whether anything was written, minted
// or attached.
func (a *Agent) EnsureGuestBootstrap(ctx context.Context, vmid int) (t GuestToken, changed bool, err error) {
	g := a.guest
	if g == nil {
		return GuestToken{}, false, errGuestAPIOff
	}
	g.minted.Lock()
	defer g.minted.Unlock()
	path := filepath.Join(a.cfg.StateDir, GuestsDir, strconv.Itoa(vmid), BootstrapFile)
	var have guestapi.Bootstrap
	if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &have) == nil && have.VMID == vmid && have.Schema == guestapi.BootstrapSchema {
		g.mu.Lock()
		v, known := g.tokens[sha256.Sum256([]byte(have.LocalAPI.Token))]
		g.mu.Unlock()
		if known && v == vmid {
			t, err := a.deliverBootstrap(ctx, vmid, have.LocalAPI.Token)
			return t, t.Mount != "" || t.rewritten || t.Identity, err
		}
	}
	t, err = a.deliverBootstrap(ctx, vmid, "")
	return t, t.Token != "", err
}

// deliverBootstrap writes guest vmid's bootstrap file and attaches it:
// with a new token when existing is "", else with existing, the guest's
// current token, rewriting the file only when its content changes.
func (a *Agent) deliverBootstrap(ctx context.Context, vmid int, existing string) (GuestToken, error) {
	g := a.guest
	guest, err := a.guestOf(ctx, vmid)
	if err != nil {
		return GuestToken{}, err
	}
	conf, err := g.cfg.Proxmox.GuestConfig(ctx, guest.Type, vmid)
	if err != nil {
		return GuestToken{}, fmt.Errorf("guest %d config: %w", vmid, err)
	}
	// The container's root reads the file: host root for a privileged
	// container, for an unprivileged one the host uid its lxc.idmap maps
	// root to (PVE's default 100000), which the agent grants read access
	// with a POSIX ACL. A mapping PVE would not parse is refused before
	// anything changes.
	reader, err := conf.RootUID()
	if err != nil {
		return GuestToken{}, fmt.Errorf("guest %d: cannot tell which host uid is the container's root, so no bootstrap file is written: %w", vmid, err)
	}
	if reader == 0 {
		reader = -1 // host root reads it as it is
	}
	tok, hash := existing, sha256.Sum256([]byte(existing))
	if existing == "" {
		if tok, hash, err = guestapi.NewToken(); err != nil {
			return GuestToken{}, err
		}
	}
	dir, err := a.makeBootstrapDir(vmid)
	if err != nil {
		return GuestToken{}, err
	}
	boot := guestapi.Bootstrap{Schema: guestapi.BootstrapSchema, VMID: vmid,
		LocalAPI: guestapi.BootstrapAPI{Endpoint: g.endpoint, Fingerprint: g.fingerprint, Token: tok}}
	if g.cfg.HubURL != "" {
		boot.Hub = &guestapi.BootstrapHub{URL: g.cfg.HubURL}
	}
	// The customer and the retrieval password come from the hub's desired
	// state for this guest (docs/guest-api.md); the password never leaves
	// Go: not logged, not in the run, not in an error.
	if dg := a.desiredGuest(vmid); dg != nil && dg.CustomerID != "" {
		boot.Customer = &guestapi.BootstrapCustomer{ID: dg.CustomerID}
		if boot.Hub != nil {
			boot.Hub.RetrievalPassword = dg.RetrievalPassword
		}
	}
	body, err := json.MarshalIndent(boot, "", "  ")
	if err != nil {
		return GuestToken{}, err
	}
	path := filepath.Join(dir, BootstrapFile)
	body = append(body, '\n')
	out := GuestToken{VMID: vmid, Bootstrap: path}
	if existing == "" {
		// The hash first: a bootstrap file whose token the store does not
		// know would be worse than a token without its file (a retry mints
		// again and rewrites it).
		if err := a.store.SetGuestToken(ctx, vmid, hash[:], time.Now()); err != nil {
			return GuestToken{}, err
		}
		g.mu.Lock()
		for h, v := range g.tokens {
			if v == vmid {
				delete(g.tokens, h)
			}
		}
		g.tokens[hash] = vmid
		g.mu.Unlock()
		out.Token = tok
	}
	// The token's hash goes into the container's description too, where
	// the agent of a node it migrates to finds it (guestidentity.go).
	// Not fatal: the token works here either way.
	if wrote, err := a.recordIdentity(ctx, vmid, hash, conf); err != nil {
		a.log.Warn("guest token's identity line not recorded: the token works on this node, but after a migration the new node's agent cannot verify it until it is rotated there", "vmid", vmid, "err", err)
	} else if wrote {
		out.Identity = true
	}
	var grant []func(string) error
	if reader >= 0 {
		grant = append(grant, func(p string) error { return grantRead(p, reader, false) })
	}
	if old, err := os.ReadFile(path); existing == "" || err != nil || !bytes.Equal(old, body) {
		if err := writeFileAtomic(path, body, 0o600, grant...); err != nil {
			return GuestToken{}, fmt.Errorf("guest %d: the token is active but its bootstrap file could not be written (mint again): %w", vmid, err)
		}
		out.rewritten = true
	}
	if reader >= 0 {
		if err := grantRead(dir, reader, true); err != nil {
			return out, fmt.Errorf("guest %d: bootstrap file written, but the container cannot read it: %w", vmid, err)
		}
	}
	slot, attached, shared := bootstrapSlot(conf, dir)
	switch {
	case attached && (shared || g.cfg.Attach == nil):
		out.Attached = true
	case attached:
		// Attached before the mount was marked shared=1: the same command
		// on the same slot re-marks it, so the container can migrate.
		if err := g.cfg.Attach.AttachReadOnly(ctx, vmid, slot, dir, BootstrapMountPath); err != nil {
			return out, fmt.Errorf("guest %d: bootstrap file written; marking its mount point mp%d shared=1 (for migration) failed: %w", vmid, slot, err)
		}
		out.Mount, out.Attached = "mp"+strconv.Itoa(slot), true
	case g.cfg.Attach == nil:
		a.log.Warn("guest bootstrap file written but not attached: privileged operations are off", "vmid", vmid)
	case slot < 0:
		return out, fmt.Errorf("guest %d: bootstrap file written; every mount point (mp0..mp255) is taken, none left to attach it", vmid)
	default:
		if err := g.cfg.Attach.AttachReadOnly(ctx, vmid, slot, dir, BootstrapMountPath); err != nil {
			return out, fmt.Errorf("guest %d: bootstrap file written; attaching it failed: %w", vmid, err)
		}
		out.Mount, out.Attached = "mp"+strconv.Itoa(slot), true
	}
	if existing != "" && !out.rewritten && out.Mount == "" && !out.Identity {
		return out, nil // intact and attached: nothing to say
	}
	msg := "guest token minted; bootstrap file written"
	if existing != "" {
		msg = "guest bootstrap file delivered again with its current token"
	}
	a.log.Info(msg, "vmid", vmid, "attached", out.Attached, "mount", out.Mount,
		"customer", boot.Customer != nil, "retrieval_password", boot.Hub != nil && boot.Hub.RetrievalPassword != "")
	return out, nil
}

// bootstrapSlot is the mount point that attaches dir to the guest
// (attached true; shared whether it is marked shared=1), or the first
// free mpN from the top (mp255 down, so that the guest's own mp0, mp1, …
// stay free), or -1.
func bootstrapSlot(conf proxmox.GuestConfig, dir string) (slot int, attached, shared bool) {
	for key, mp := range conf.MountPoints {
		if filepath.Clean(mp.Volume) == filepath.Clean(dir) {
			n, _ := strconv.Atoi(strings.TrimPrefix(key, "mp"))
			return n, true, mp.Options["shared"] == "1"
		}
	}
	for n := 255; n >= 0; n-- {
		if _, ok := conf.MountPoints["mp"+strconv.Itoa(n)]; !ok {
			return n, false, false
		}
	}
	return -1, false, false
}

// errVM refuses the guest API for a VM.
func errVM(vmid int) error {
	return fmt.Errorf("guest %d is a QEMU VM: the guest API serves containers only (a VM has no bind mount to carry its bootstrap file): %w", vmid, guestapi.ErrNotServed)
}

// guestOf finds container vmid, refusing a VM or a missing guest.
func (a *Agent) guestOf(ctx context.Context, vmid int) (proxmox.Guest, error) {
	guests, err := a.guest.cfg.Proxmox.Guests(ctx)
	if err != nil {
		return proxmox.Guest{}, fmt.Errorf("list guests: %w", err)
	}
	for _, g := range guests {
		if g.VMID != vmid {
			continue
		}
		if g.Type != proxmox.LXC {
			return proxmox.Guest{}, errVM(vmid)
		}
		return g, nil
	}
	return proxmox.Guest{}, fmt.Errorf("guest %d does not exist on this node: %w", vmid, guestapi.ErrNotFound)
}

// guestOptions are the guest API server's limits with the agent's logger.
func (a *Agent) guestOptions() guestapi.Options {
	o := a.guest.cfg.Limits
	o.Logger = a.log.With("part", "guest-api")
	return o
}

// MintGuestToken answers the local API (`felhom-agent guest-token
// rotate`): the token is in this answer only.
func (l localAPI) MintGuestToken(ctx context.Context, vmid int) (api.GuestToken, error) {
	t, err := l.a.MintGuestToken(ctx, vmid)
	switch {
	case errors.Is(err, errGuestAPIOff):
		return api.GuestToken{}, fmt.Errorf("%w: %w", err, api.ErrUnavailable)
	case errors.Is(err, guestapi.ErrNotServed):
		return api.GuestToken{}, &api.BadRequestError{Field: "vmid", Msg: err.Error()}
	case errors.Is(err, guestapi.ErrNotFound):
		return api.GuestToken{}, fmt.Errorf("%w: %w", err, api.ErrNotFound)
	case err != nil && t.Token == "":
		return api.GuestToken{}, err
	}
	out := api.GuestToken{VMID: vmid, Token: t.Token, Bootstrap: t.Bootstrap, Mount: t.Mount, Attached: t.Attached}
	if err != nil {
		out.Warning = err.Error()
	}
	return out, nil
}

// guestDelivery is guest.deliver_bootstrap's daemon side.
type guestDelivery struct{ a *Agent }

func (d guestDelivery) DeliverBootstrap(ctx context.Context, vmid int) (builtins.BootstrapDelivery, error) {
	t, err := d.a.MintGuestToken(ctx, vmid)
	if err != nil {
		return builtins.BootstrapDelivery{}, err
	}
	return builtins.BootstrapDelivery{VMID: vmid, Bootstrap: t.Bootstrap, Mount: t.Mount, Attached: t.Attached, Changed: true}, nil
}

func (d guestDelivery) EnsureBootstrap(ctx context.Context, vmid int) (builtins.BootstrapDelivery, error) {
	t, changed, err := d.a.EnsureGuestBootstrap(ctx, vmid)
	if err != nil {
		return builtins.BootstrapDelivery{}, err
	}
	return builtins.BootstrapDelivery{VMID: vmid, Bootstrap: t.Bootstrap, Mount: t.Mount, Attached: t.Attached, Changed: changed}, nil
}
