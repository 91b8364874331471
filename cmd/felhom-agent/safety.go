package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	sshagent "golang.org/x/crypto/ssh/agent"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/agent"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/safety"
)

// SafetyFlags configure the safety gate (docs/safety.md).
type SafetyFlags struct {
	OperatorKeys string `name:"operator-keys" help:"File of the operators' OpenSSH public keys (authorized_keys syntax), each marked role=\"operational\" or role=\"recovery\"; empty: none (destructive calls stay pending)." placeholder:"FILE" config:"safety.operator_keys"`
	MinBackups   int    `name:"min-backups" help:"How many of a guest's newest backups no unsigned run may delete or prune away." default:"1" config:"safety.min_backups" valid:"positive"`
	ScratchVMIDs []int  `name:"scratch-vmids" help:"Guests that count as every run's own (rolling them back or deleting them is benign), e.g. a self-test guest." placeholder:"VMID,..." config:"safety.scratch_vmids"`
}

// simScratch is the simulator's self-test guest, scratch with --sim.
const simScratch = 9999

// agentConfig is the gate's configuration for serve.
func (f SafetyFlags) agentConfig(hostID string, sim bool) (agent.SafetyConfig, error) {
	scratch := f.ScratchVMIDs
	if sim {
		scratch = append(append([]int(nil), scratch...), simScratch)
	}
	return agent.SafetyConfig{OperatorKeys: f.OperatorKeys, MinBackups: f.MinBackups, ScratchVMIDs: scratch, HostID: hostID, SimOperator: sim}, nil
}

// PendingCmd lists the pending operations of a serving agent.
type PendingCmd struct {
	remoteFlags
	All bool `help:"Also the approved and refused ones." env:"-"`
}

// Run lists them, each with what it would do and how to sign it.
func (c *PendingCmd) Run(g *Globals) error {
	cl, ctx, done := c.session()
	defer done()
	ops, err := cl.Pending(ctx, c.All)
	if err != nil {
		return err
	}
	if c.JSON {
		return writeJSON(g.stdout, ops)
	}
	if len(ops) == 0 {
		fmt.Fprintln(g.stdout, "no pending operations")
		return nil
	}
	for _, p := range ops {
		fmt.Fprintf(g.stdout, "%s  %s  run %s (%s), guest %d\n  would: %s\n", p.ID, p.State, p.Run, p.Playbook, p.Guest, p.What)
		if p.State == "open" {
			fmt.Fprintf(g.stdout, "  sign:  felhom-agent sign %s -f ~/.ssh/id_ed25519 && felhom-agent approve %s\n  expires %s\n", p.ID, p.ID, timeText(p.Expires, c.UTC))
		} else if p.Detail != "" {
			fmt.Fprintf(g.stdout, "  %s\n", p.Detail)
		}
	}
	return nil
}

// SignCmd signs a pending operation's blob (or a blob it builds) with the
// operator's SSH key or agent.
type SignCmd struct {
	remoteFlags
	ID     string        `arg:"" optional:"" help:"The pending operation to sign (felhom-agent pending); omit it with --op to build a new operation (a hub job, a rotation)."`
	Key    string        `short:"f" help:"Private key file to sign with, through ssh-keygen -Y sign (passphrases and FIDO2 security keys work as with ssh); empty: the SSH agent ($SSH_AUTH_SOCK)." placeholder:"KEY" env:"-"`
	Agent  string        `name:"agent-key" help:"With the SSH agent: the SHA256 fingerprint of the key to use; empty: its first key." placeholder:"SHA256:..." env:"-"`
	Out    string        `help:"Where to write the blob; the signature goes beside it with .sig. Default: ID.json in the current directory." placeholder:"FILE" env:"-"`
	Op     string        `help:"Build a new operation: the playbook or trigger it runs, or rotate-operator-keys." env:"-"`
	Host   string        `help:"With --op: the target host id (hub.host_id, or the node name)." env:"-"`
	Guest  int           `help:"With --op: the target guest's vmid (0: none)." env:"-"`
	Param  []string      `short:"p" sep:"none" help:"With --op: parameter NAME=JSON (a bare word is a string)." placeholder:"NAME=VALUE" env:"-"`
	KeysIn string        `name:"keys-file" help:"With --op rotate-operator-keys: the new allow-list file." placeholder:"FILE" env:"-"`
	TTL    time.Duration `help:"With --op: how long the operation stays valid." default:"1h" env:"-"`
}

// Run writes the blob and its signature.
func (c *SignCmd) Run(g *Globals) error {
	blob, name, err := c.blob()
	if err != nil {
		return err
	}
	out := c.Out
	if out == "" {
		out = name + ".json"
	}
	if err := os.WriteFile(out, blob, 0o600); err != nil {
		return err
	}
	sigFile := out + ".sig"
	if c.Key != "" {
		os.Remove(sigFile) // ssh-keygen refuses to overwrite
		keygen, err := exec.LookPath("ssh-keygen")
		if err != nil {
			return errors.New("sign -f needs ssh-keygen (OpenSSH) on PATH; or leave -f out to sign with the SSH agent")
		}
		cmd := exec.Command(keygen, "-Y", "sign", "-n", safety.Namespace, "-f", c.Key, out)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, g.stderr, g.stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("ssh-keygen -Y sign: %w", err)
		}
	} else {
		signer, err := agentSigner(c.Agent)
		if err != nil {
			return err
		}
		armored, err := safety.Sign(blob, signer)
		if err != nil {
			return err
		}
		if err := os.WriteFile(sigFile, armored, 0o600); err != nil {
			return err
		}
	}
	fmt.Fprintf(g.stdout, "signed %s (%s); submit it with: felhom-agent approve %s\n", out, sigFile, strings.TrimSuffix(out, ".json"))
	return nil
}

// blob fetches the pending operation's blob, or builds one from --op.
func (c *SignCmd) blob() ([]byte, string, error) {
	if c.ID != "" {
		if c.Op != "" {
			return nil, "", errors.New("give a pending operation id or --op, not both")
		}
		cl, ctx, done := c.session()
		defer done()
		p, err := cl.PendingOne(ctx, c.ID)
		if err != nil {
			return nil, "", err
		}
		return []byte(p.Blob), p.ID, nil
	}
	if c.Op == "" || c.Host == "" {
		return nil, "", errors.New("name a pending operation to sign (felhom-agent pending), or build one with --op and --host")
	}
	params := map[string]json.RawMessage{}
	for _, kv := range c.Param {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, "", fmt.Errorf("-p %q: want NAME=VALUE", kv)
		}
		if !json.Valid([]byte(v)) {
			v = string(mustJSON(v))
		}
		params[k] = json.RawMessage(v)
	}
	if c.Op == safety.OpRotateKeys {
		text, err := os.ReadFile(c.KeysIn)
		if err != nil {
			return nil, "", fmt.Errorf("--keys-file: %w", err)
		}
		if _, err := safety.ParseAllowList(c.KeysIn, text); err != nil {
			return nil, "", err
		}
		params["authorized_keys"] = mustJSON(string(text))
	}
	raw, _ := json.Marshal(params)
	now := time.Now()
	op := safety.Op{Op: c.Op, Target: safety.Target{HostID: c.Host, GuestID: c.Guest}, Params: raw, Nonce: safety.NewNonce(),
		IssuedAt: now, ExpiresAt: now.Add(c.TTL), KeyID: os.Getenv("USER")}
	b, err := op.Canonical()
	return b, "op-" + op.Nonce[:16], err
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// agentSigner returns the SSH agent's key with fingerprint fp (or its
// first key).
func agentSigner(fp string) (ssh.Signer, error) {
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return nil, errors.New("no SSH agent ($SSH_AUTH_SOCK is empty): sign with -f KEY, or start ssh-agent and ssh-add your key")
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("the SSH agent: %w", err)
	}
	signers, err := sshagent.NewClient(conn).Signers()
	if err != nil {
		return nil, fmt.Errorf("the SSH agent: %w", err)
	}
	for _, s := range signers {
		if fp == "" || ssh.FingerprintSHA256(s.PublicKey()) == fp {
			return s, nil
		}
	}
	if fp == "" {
		return nil, errors.New("the SSH agent holds no key: ssh-add one")
	}
	return nil, fmt.Errorf("the SSH agent holds no key %s", fp)
}

// ApproveCmd submits a signed operation to a serving agent.
type ApproveCmd struct {
	remoteFlags
	Name string `arg:"" help:"The signed operation: ID (reads ID.json and ID.json.sig) or the blob file."`
	Sig  string `help:"The signature file; default: the blob file with .sig." placeholder:"FILE" env:"-"`
}

// Run submits and says what the agent did.
func (c *ApproveCmd) Run(g *Globals) error {
	file := c.Name
	if filepath.Ext(file) != ".json" {
		file += ".json"
	}
	sigFile := c.Sig
	if sigFile == "" {
		sigFile = file + ".sig"
	}
	blob, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	sig, err := os.ReadFile(sigFile)
	if err != nil {
		return fmt.Errorf("%w (sign it first: felhom-agent sign %s)", err, strings.TrimSuffix(filepath.Base(file), ".json"))
	}
	cl, ctx, done := c.session()
	defer done()
	res, err := cl.Approve(ctx, api.ApproveRequest{Blob: string(blob), Signature: string(sig)})
	if err != nil {
		return err
	}
	if c.JSON {
		return writeJSON(g.stdout, res)
	}
	switch {
	case res.Rotated:
		fmt.Fprintf(g.stdout, "approved: the operator allow-list is rotated (%d keys), signed by %s\n", res.Keys, res.Signer)
	case res.Resumed:
		fmt.Fprintf(g.stdout, "approved %s: run %s goes on (signed by %s)\n", res.Pending, res.Run, res.Signer)
	default:
		fmt.Fprintf(g.stdout, "approved: run %s carries it out (signed by %s)\n", res.Run, res.Signer)
	}
	return nil
}

// cliGate is the safety gate of a `felhom-agent run`: benign calls pass;
// a destructive one is refused with its pending operation (nobody to ask),
// except with --sim, where the simulated operator signs it.
func cliGate(g *Globals, be *backend, sim bool, id string, pb *engine.Playbook, params *engine.Params, inner proxmox.Observer, logger *slog.Logger) (*safety.Gate, error) {
	rec, err := json.Marshal(params.Record())
	if err != nil {
		return nil, err
	}
	cfg, err := g.Safety.agentConfig("", sim)
	if err != nil {
		return nil, err
	}
	gate := &safety.Gate{
		Run:    safety.RunInfo{ID: id, Playbook: pb.Name, Triggers: pb.Decl.Triggers, Params: rec, Source: "cli"},
		HostID: be.Client.Node(), Policy: safety.Policy{MinBackups: cfg.MinBackups, Scratch: cfg.ScratchVMIDs},
		Facts: safety.ClientFacts{C: be.Client}, Inner: inner,
		Audit: func(e safety.AuditEntry) {
			if e.Decision != safety.Allowed {
				logger.Info("safety gate", "run", id, "decision", string(e.Decision), "what", e.What, "rule", e.Rule, "detail", e.Detail)
			}
		},
	}
	if sim {
		if err := gate.SignSimulated(); err != nil {
			return nil, err
		}
	}
	return gate, nil
}
