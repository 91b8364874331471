package safety

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

func newGate(audit *[]AuditEntry) *Gate {
	return &Gate{
		Run:    RunInfo{ID: "r-1", Playbook: "decommission", Triggers: []string{"decommission"}, Params: json.RawMessage(`{"vmid":100,"archives":false}`), Source: "api"},
		HostID: "host-a", Policy: Policy{MinBackups: 1}, Facts: fakeFacts{},
		Audit: func(e AuditEntry) { *audit = append(*audit, e) },
		Now:   func() time.Time { return t0 },
	}
}

var deleteGuest = mut("DELETE", "/nodes/pve/lxc/100", "purge", "1")

// TestGateRefusesWithoutSignature: no signature, nobody to ask: the call is
// refused with its pending operation, whose blob names the run.
func TestGateRefusesWithoutSignature(t *testing.T) {
	var audit []AuditEntry
	g := newGate(&audit)
	if err := g.BeforeMutation(context.Background(), mut("POST", "/nodes/pve/lxc/100/status/stop")); err != nil {
		t.Fatalf("a benign stop = %v", err)
	}
	err := g.BeforeMutation(context.Background(), deleteGuest)
	var re *RefusedError
	if !errors.As(err, &re) || !errors.Is(err, ErrDestructive) {
		t.Fatalf("delete without a signature = %v; want a RefusedError", err)
	}
	p := re.Pending
	if p.Op.Op != "decommission" || p.Op.Target != (Target{HostID: "host-a", GuestID: 100}) || string(p.Op.Params) != `{"vmid":100,"archives":false}` {
		t.Errorf("pending op = %+v", p.Op)
	}
	if len(audit) != 2 || audit[0].Decision != Allowed || audit[1].Decision != Refused || audit[1].Pending != p.ID {
		t.Errorf("audit = %+v; want allowed, refused", audit)
	}
}

// TestGateSignedRun: a run carrying a signature for guest 100 may delete
// guest 100 but not guest 101.
func TestGateSignedRun(t *testing.T) {
	f := newFixture(t)
	var audit []AuditEntry
	g := newGate(&audit)
	blob := blobOf(t, op(nil))
	v, err := f.v.Verify(blob, sign(t, f.op, Namespace, blob), nil)
	if err != nil {
		t.Fatal(err)
	}
	g.Signature = v
	if err := g.BeforeMutation(context.Background(), deleteGuest); err != nil {
		t.Fatalf("a signed delete = %v", err)
	}
	if err := g.BeforeMutation(context.Background(), mut("DELETE", "/nodes/pve/lxc/101")); !errors.Is(err, ErrDestructive) {
		t.Fatalf("deleting another guest under the signature = %v; want refused", err)
	}
	if audit[0].Decision != AllowedSigned || audit[0].Signer == "" || audit[1].Decision != Refused {
		t.Errorf("audit = %+v", audit)
	}
	// Other params: the signature does not cover the run.
	g.Run.Params = json.RawMessage(`{"vmid":100,"archives":true}`)
	if err := g.BeforeMutation(context.Background(), deleteGuest); !errors.Is(err, ErrDestructive) {
		t.Fatalf("a signature over other params = %v; want refused", err)
	}
}

type approveFunc func(context.Context, *Pending) (*Verified, error)

func (f approveFunc) Approve(ctx context.Context, p *Pending) (*Verified, error) { return f(ctx, p) }

// TestGateApprover: the approver's verified op lets the call go on; one
// that does not cover the call is refused.
func TestGateApprover(t *testing.T) {
	f := newFixture(t)
	var audit []AuditEntry
	g := newGate(&audit)
	g.Approver = approveFunc(func(_ context.Context, p *Pending) (*Verified, error) {
		return f.v.Verify(p.Blob, sign(t, f.op, Namespace, p.Blob), p.Covers)
	})
	if err := g.BeforeMutation(context.Background(), deleteGuest); err != nil {
		t.Fatalf("approved delete = %v", err)
	}
	if audit[0].Decision != PendingOp || audit[1].Decision != AllowedSigned {
		t.Errorf("audit = %+v; want pending, allowed_signed", audit)
	}
	g2 := newGate(&audit)
	g2.Approver = approveFunc(func(_ context.Context, p *Pending) (*Verified, error) {
		other := op(func(o *Op) { o.Target.GuestID = 101 })
		b := blobOf(t, other)
		return f.v.Verify(b, sign(t, f.op, Namespace, b), nil)
	})
	if err := g2.BeforeMutation(context.Background(), deleteGuest); !errors.Is(err, ErrDestructive) {
		t.Fatalf("an approval for another guest = %v; want refused", err)
	}
}

// TestGateLearnsWhatTheRunCreated: a guest becomes the run's own only when
// a create on a free vmid started its task — not from a parameter.
func TestGateLearnsWhatTheRunCreated(t *testing.T) {
	var audit []AuditEntry
	g := newGate(&audit)
	ctx := context.Background()
	if err := g.BeforeMutation(ctx, mut("POST", "/nodes/pve/lxc", "vmid", "300", "ostemplate", "usb:backup/a.tar.zst", "restore", "1")); err != nil {
		t.Fatal(err)
	}
	g.TaskStarted(mustUPID(t, "UPID:pve:00001234:00000001:692D6C00:vzrestore:300:root@pam:"))
	if err := g.BeforeMutation(ctx, mut("DELETE", "/nodes/pve/lxc/300", "purge", "1")); err != nil {
		t.Fatalf("deleting the guest the run restored = %v; want allowed", err)
	}
	// A create whose POST was refused (no task) makes nothing the run's.
	if err := g.BeforeMutation(ctx, mut("POST", "/nodes/pve/lxc", "vmid", "100", "ostemplate", "x")); err != nil {
		t.Fatal(err)
	}
	g.TaskStarted(mustUPID(t, "UPID:pve:00001234:00000001:692D6C00:vzdump:100:root@pam:"))
	if err := g.BeforeMutation(ctx, deleteGuest); !errors.Is(err, ErrDestructive) {
		t.Fatalf("deleting guest 100 after a refused create = %v; want refused", err)
	}
	// A root create on a free vmid.
	if err := g.BeforeRoot(ctx, proxmox.RootOp{Op: "host.create_golden", VMID: 400}); err != nil {
		t.Fatal(err)
	}
	if !g.CreatedGuest(400) {
		t.Error("a golden create on a free vmid is not the run's")
	}
}

// TestGateLearnsWhatTheRunSnapshotted: a snapshot becomes the run's own
// when its task ends OK — not when it starts (PVE refuses a name already
// used inside the worker, beside another's snapshot of that name), and not
// while it runs.
func TestGateLearnsWhatTheRunSnapshotted(t *testing.T) {
	for _, tt := range []struct {
		name string
		end  proxmox.TaskStatus // what the wait saw; "" Status: no wait yet
		err  error
		own  bool
	}{
		{"ended OK", proxmox.TaskStatus{Status: "stopped", ExitStatus: "OK"}, nil, true},
		{"ended with warnings", proxmox.TaskStatus{Status: "stopped", ExitStatus: "WARNINGS: 1"}, nil, true},
		{"failed: name already used", proxmox.TaskStatus{Status: "stopped", ExitStatus: "snapshot name 'mine' already used"}, errors.New("task failed"), false},
		{"still running (the wait was cut short)", proxmox.TaskStatus{Status: "running"}, context.Canceled, false},
		{"not waited for", proxmox.TaskStatus{}, nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var audit []AuditEntry
			g := newGate(&audit)
			ctx := context.Background()
			if err := g.BeforeMutation(ctx, mut("POST", "/nodes/pve/lxc/100/snapshot", "snapname", "mine")); err != nil {
				t.Fatal(err)
			}
			u := mustUPID(t, "UPID:pve:00001234:00000001:692D6C00:vzsnapshot:100:root@pam:")
			g.TaskStarted(u)
			if tt.end.Status != "" {
				tt.end.UPID = u
				g.TaskWaited(u, time.Second, tt.end, tt.err)
			}
			err := g.BeforeMutation(ctx, mut("DELETE", "/nodes/pve/lxc/100/snapshot/mine"))
			if got := err == nil; got != tt.own || g.TookSnapshot(100, "mine") != tt.own {
				t.Errorf("deleting the snapshot = %v (took it: %v); want the run's own: %v", err, g.TookSnapshot(100, "mine"), tt.own)
			}
		})
	}
}

// TestSimOperator: the simulated operator signs through the verifier.
func TestSimOperator(t *testing.T) {
	f := newFixture(t)
	sim, err := NewSimOperator(f.v)
	if err != nil {
		t.Fatal(err)
	}
	var audit []AuditEntry
	g := newGate(&audit)
	g.Approver, g.Simulated = sim, true
	if err := g.BeforeMutation(context.Background(), deleteGuest); err != nil {
		t.Fatal(err)
	}
	if last := audit[len(audit)-1]; last.Decision != AllowedSigned || last.Detail != "signed by the simulated operator" {
		t.Errorf("audit = %+v", last)
	}
}
