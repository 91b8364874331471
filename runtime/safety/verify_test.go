package safety

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func newSigner(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func keyLine(role Role, s ssh.Signer) string {
	return `role="` + string(role) + `" ` + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey()))) + " op@example"
}

// fixture is a verifier for host "host-a" trusting op (operational) and
// rec (recovery), with a durable nonce file in dir.
type fixture struct {
	op, rec, stranger ssh.Signer
	dir               string
	v                 *Verifier
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{op: newSigner(t), rec: newSigner(t), stranger: newSigner(t), dir: t.TempDir()}
	keys := filepath.Join(f.dir, "operator_keys.conf")
	if err := os.WriteFile(keys, []byte("# operators\n"+keyLine(RoleOperational, f.op)+"\n"+keyLine(RoleRecovery, f.rec)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ring, err := LoadKeyRing(keys, f.dir)
	if err != nil {
		t.Fatal(err)
	}
	f.v = &Verifier{Keys: ring, HostID: "host-a", Now: func() time.Time { return t0 }}
	f.reopen(t)
	return f
}

// reopen opens the nonce record again, as a restarted agent does.
func (f *fixture) reopen(t testing.TB) {
	n, err := OpenFileNonces(filepath.Join(f.dir, "nonces"), func() time.Time { return t0 })
	if err != nil {
		t.Fatal(err)
	}
	if old, ok := f.v.Nonces.(*FileNonces); ok {
		old.Close()
	}
	f.v.Nonces = n
}

func op(mod func(*Op)) Op {
	o := Op{Op: "decommission", Target: Target{HostID: "host-a", GuestID: 100},
		Params: json.RawMessage(`{"vmid":100,"archives":false}`), Nonce: NewNonce(),
		IssuedAt: t0.Add(-time.Minute), ExpiresAt: t0.Add(time.Hour), KeyID: "op@example"}
	if mod != nil {
		mod(&o)
	}
	return o
}

func blobOf(t testing.TB, o Op) []byte {
	b, err := o.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sign(t testing.TB, s ssh.Signer, ns string, blob []byte) []byte {
	t.Helper()
	sig, err := sshsig.Sign(strings.NewReader(string(blob)), s, sshsig.HashSHA512, ns)
	if err != nil {
		t.Fatal(err)
	}
	return sshsig.Armor(sig)
}

func TestCanonical(t *testing.T) {
	o := op(func(o *Op) {
		o.Nonce = "0123456789abcdef0123"
		o.Params = json.RawMessage(`{ "z": 1, "a": {"y": [1, 2], "b": "<&>"} }`)
	})
	got := string(blobOf(t, o))
	want := `{"expires_at":"2026-12-01T13:00:00Z","issued_at":"2026-12-01T11:59:00Z","key_id":"op@example","nonce":"0123456789abcdef0123","op":"decommission","params":{"a":{"b":"<&>","y":[1,2]},"z":1},"target":{"guest_id":100,"host_id":"host-a"}}`
	if got != want {
		t.Errorf("Canonical() =\n%s; want\n%s", got, want)
	}
}

func TestVerifyAccepts(t *testing.T) {
	f := newFixture(t)
	blob := blobOf(t, op(nil))
	v, err := f.v.Verify(blob, sign(t, f.op, Namespace, blob), nil)
	if err != nil {
		t.Fatalf("Verify(a good op) = %v", err)
	}
	if v.Op.Op != "decommission" || v.Target.GuestID != 100 || v.Signer.Role != RoleOperational {
		t.Errorf("Verified = %+v", v)
	}
}

// TestVerifyRefusals: every refusal of the verifier, each at its stage,
// none consuming the nonce (the same nonce verifies after the refusals).
func TestVerifyRefusals(t *testing.T) {
	f := newFixture(t)
	nonce := NewNonce()
	good := op(func(o *Op) { o.Nonce = nonce })
	goodBlob := blobOf(t, good)
	tests := []struct {
		name   string
		blob   []byte
		sig    func() []byte
		expect func(*Verified) error
		want   error
	}{
		{"not armoured", goodBlob, func() []byte { return []byte("hello") }, nil, ErrMalformed},
		{"wrong namespace", goodBlob, func() []byte { return sign(t, f.op, "git", goodBlob) }, nil, ErrNamespace},
		{"key not allowed", goodBlob, func() []byte { return sign(t, f.stranger, Namespace, goodBlob) }, nil, ErrUnknownSigner},
		{"forged (other bytes signed)", goodBlob, func() []byte {
			return sign(t, f.op, Namespace, blobOf(t, op(func(o *Op) { o.Nonce = nonce; o.Target.GuestID = 101 })))
		}, nil, ErrBadSignature},
		{"re-canonicalised bytes", append([]byte(" "), goodBlob...), func() []byte { return sign(t, f.op, Namespace, goodBlob) }, nil, ErrBadSignature},
		{"other host", nil, func() []byte { return nil }, nil, ErrTarget},
		{"other guest", goodBlob, func() []byte { return sign(t, f.op, Namespace, goodBlob) }, func(v *Verified) error {
			if v.Target.GuestID != 200 {
				return errors.New("other guest")
			}
			return nil
		}, ErrNotCovered},
		{"other params", goodBlob, func() []byte { return sign(t, f.op, Namespace, goodBlob) }, func(v *Verified) error {
			return (&Pending{Op: op(func(o *Op) { o.Params = json.RawMessage(`{"vmid":100,"archives":true}`) })}).Covers(v)
		}, ErrNotCovered},
		{"expired", nil, nil, nil, ErrExpired},
		{"not yet valid", nil, nil, nil, ErrNotYetValid},
		{"recovery key signs a destructive op", goodBlob, func() []byte { return sign(t, f.rec, Namespace, goodBlob) }, nil, ErrNotCovered},
		{"unknown field", nil, nil, nil, ErrMalformed},
		{"a plan request's op, signed", nil, nil, nil, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			blob, sigf := tt.blob, tt.sig
			switch tt.name {
			case "other host":
				blob = blobOf(t, op(func(o *Op) { o.Nonce = nonce; o.Target.HostID = "host-b" }))
			case "expired":
				blob = blobOf(t, op(func(o *Op) { o.Nonce = nonce; o.IssuedAt = t0.Add(-2 * time.Hour); o.ExpiresAt = t0 }))
			case "not yet valid":
				blob = blobOf(t, op(func(o *Op) { o.Nonce = nonce; o.IssuedAt = t0.Add(3 * time.Minute); o.ExpiresAt = t0.Add(time.Hour) }))
			case "unknown field":
				blob = []byte(strings.Replace(string(goodBlob), `"key_id"`, `"admin":true,"key_id"`, 1))
			case "a plan request's op, signed":
				blob = blobOf(t, op(func(o *Op) { o.Nonce = nonce; o.Op = OpPlan }))
			}
			if sigf == nil || tt.name == "other host" {
				b := blob
				sigf = func() []byte { return sign(t, f.op, Namespace, b) }
			}
			_, err := f.v.Verify(blob, sigf(), tt.expect)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v; want %v", err, tt.want)
			}
		})
	}
	// Within the skew, an op issued a little in the future is accepted —
	// and its nonce, untouched by every refusal above, is used now.
	if _, err := f.v.Verify(goodBlob, sign(t, f.op, Namespace, goodBlob), nil); err != nil {
		t.Fatalf("the good op after the refusals = %v; want accepted (no refusal consumed its nonce)", err)
	}
}

func TestVerifyReplay(t *testing.T) {
	f := newFixture(t)
	blob := blobOf(t, op(nil))
	sig := sign(t, f.op, Namespace, blob)
	if _, err := f.v.Verify(blob, sig, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.v.Verify(blob, sig, nil); !errors.Is(err, ErrReplay) {
		t.Fatalf("second Verify = %v; want ErrReplay", err)
	}
	f.reopen(t) // the agent restarts
	if _, err := f.v.Verify(blob, sig, nil); !errors.Is(err, ErrReplay) {
		t.Fatalf("Verify after a restart = %v; want ErrReplay", err)
	}
}

func TestVerifySkew(t *testing.T) {
	f := newFixture(t)
	blob := blobOf(t, op(func(o *Op) { o.IssuedAt = t0.Add(90 * time.Second) }))
	if _, err := f.v.Verify(blob, sign(t, f.op, Namespace, blob), nil); err != nil {
		t.Fatalf("issued 90 s ahead (skew 2 min) = %v; want accepted", err)
	}
}

// TestRotation: a recovery key may rotate; the rotated list lives in the
// state directory and wins over the configured file at the next load.
func TestRotation(t *testing.T) {
	f := newFixture(t)
	newOp := newSigner(t)
	text := keyLine(RoleOperational, newOp) + "\n" + keyLine(RoleRecovery, f.rec) + "\n"
	params, _ := json.Marshal(map[string]string{"authorized_keys": text})
	blob := blobOf(t, op(func(o *Op) { o.Op = OpRotateKeys; o.Target.GuestID = 0; o.Params = params }))
	v, err := f.v.Verify(blob, sign(t, f.rec, Namespace, blob), nil)
	if err != nil {
		t.Fatalf("Verify(rotation by the recovery key) = %v", err)
	}
	if _, err := f.v.Rotate(v); err != nil {
		t.Fatal(err)
	}
	d := blobOf(t, op(nil))
	if _, err := f.v.Verify(d, sign(t, f.op, Namespace, d), nil); !errors.Is(err, ErrUnknownSigner) {
		t.Errorf("the rotated-out key = %v; want ErrUnknownSigner", err)
	}
	ring, err := LoadKeyRing(filepath.Join(f.dir, "operator_keys.conf"), f.dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ring.List().Find(newOp.PublicKey()); !ok {
		t.Errorf("after a reload, the rotated key is not in force (the configured file won)")
	}
}

func TestParseAllowList(t *testing.T) {
	s := newSigner(t)
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey())))
	tests := []struct{ name, text, want string }{
		{"no role", line, "ops:1: the key has no role"},
		{"bad role", `role="admin" ` + line, `ops:1: role "admin"`},
		{"other option", `command="x",role="operational" ` + line, `ops:1: option "command"`},
		{"not a key", "role=operational ssh-ed25519 AAAA", "ops:1: not an OpenSSH public key line"},
		{"empty", "# nobody\n", "no operator key"},
		{"twice", keyLine(RoleOperational, s) + "\n" + keyLine(RoleRecovery, s), "ops:2: key SHA256:"},
	}
	for _, tt := range tests {
		_, err := ParseAllowList("ops", []byte(tt.text))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: ParseAllowList = %v; want an error containing %q", tt.name, err, tt.want)
		}
	}
}

// TestSSHKeygenInterop: a signature made by ssh-keygen itself verifies,
// and one in another namespace does not.
func TestSSHKeygenInterop(t *testing.T) {
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("ssh-keygen is not installed: the interop test needs OpenSSH's ssh-keygen")
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "id_ed25519")
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -t ed25519: %v: %s", err, out)
	}
	pub, _ := os.ReadFile(key + ".pub")
	keys := filepath.Join(dir, "keys")
	os.WriteFile(keys, []byte(`role="operational" `+string(pub)), 0o600)
	ring, err := LoadKeyRing(keys, "")
	if err != nil {
		t.Fatal(err)
	}
	v := &Verifier{Keys: ring, Nonces: &MemoryNonces{}, HostID: "host-a", Now: func() time.Time { return t0 }}
	blob := blobOf(t, op(nil))
	file := filepath.Join(dir, "op.json")
	os.WriteFile(file, blob, 0o600)
	for _, ns := range []string{Namespace, "file"} {
		os.Remove(file + ".sig")
		if out, err := exec.Command(keygen, "-Y", "sign", "-n", ns, "-f", key, file).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen -Y sign: %v: %s", err, out)
		}
		sig, _ := os.ReadFile(file + ".sig")
		_, err := v.Verify(blob, sig, nil)
		if ns == Namespace && err != nil {
			t.Errorf("ssh-keygen's signature = %v; want accepted", err)
		}
		if ns != Namespace && !errors.Is(err, ErrNamespace) {
			t.Errorf("ssh-keygen's signature in namespace %q = %v; want ErrNamespace", ns, err)
		}
	}
}

// FuzzVerify: the verifier never panics and never accepts what the
// allow-listed key did not sign, whatever the blob and the armour hold.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	blob := blobOf(f, op(nil))
	sig := sign(f, fx.op, Namespace, blob)
	f.Add(blob, sig)
	f.Add([]byte("{}"), []byte("-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n"))
	f.Add(blob, sign(f, fx.stranger, Namespace, blob))
	f.Add(blob[:len(blob)-1], sig)
	f.Fuzz(func(t *testing.T, b, s []byte) {
		v, err := fx.v.Verify(b, s, nil)
		if err == nil && string(b) != string(blob) {
			t.Fatalf("accepted bytes the operator did not sign: %q", b)
		}
		if err == nil && v.Op.Target.HostID != "host-a" {
			t.Fatalf("accepted an op for %q", v.Op.Target.HostID)
		}
	})
}

// TestClaim: Check spends nothing; of concurrent claims of one nonce one
// holds it and the others wait; a released claim leaves the nonce unused
// (another acceptance may take it); a spent one makes every other claim a
// replay, across a restart too.
func TestClaim(t *testing.T) {
	f := newFixture(t)
	blob := blobOf(t, op(nil))
	sig := sign(t, f.op, Namespace, blob)
	ver, err := f.v.Check(blob, sig, nil)
	if err != nil {
		t.Fatalf("Check = %v", err)
	}
	if f.v.Nonces.Seen(ver.Nonce) {
		t.Fatal("Check spent the nonce")
	}
	first, err := f.v.Claim(t.Context(), ver)
	if err != nil {
		t.Fatal(err)
	}
	// A second claim waits while the first holds the nonce.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	if _, err := f.v.Claim(ctx, ver); err == nil {
		t.Fatal("a second Claim while the first holds the nonce succeeded")
	}
	cancel()
	first.Release() // the acceptance did not happen (the agent was stopping)
	if f.v.Nonces.Seen(ver.Nonce) {
		t.Fatal("a released claim spent the nonce")
	}

	const racers = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	spent, replays := 0, 0
	for range racers {
		wg.Go(func() {
			c, err := f.v.Claim(t.Context(), ver)
			if err == nil {
				defer c.Release()
				err = c.Spend()
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				spent++
			case errors.Is(err, ErrReplay):
				replays++
			default:
				t.Errorf("Claim/Spend = %v", err)
			}
		})
	}
	wg.Wait()
	if spent != 1 || replays != racers-1 {
		t.Fatalf("%d spent, %d replays of %d concurrent acceptances; want exactly one spent", spent, replays, racers)
	}
	if _, err := f.v.Check(blob, sig, nil); !errors.Is(err, ErrReplay) {
		t.Errorf("Check after the spend = %v; want ErrReplay", err)
	}
	f.reopen(t)
	if _, err := f.v.Claim(t.Context(), ver); !errors.Is(err, ErrReplay) {
		t.Errorf("Claim after a restart = %v; want ErrReplay", err)
	}
	// Recheck ignores the nonce (the run that spent it carries it on).
	if _, err := f.v.Recheck(blob, sig, nil); err != nil {
		t.Errorf("Recheck of the spent operation = %v; want accepted", err)
	}
}

// TestRecheck: an accepted operation no longer checks once its key left
// the allow-list or it expired.
func TestRecheck(t *testing.T) {
	f := newFixture(t)
	blob := blobOf(t, op(nil))
	sig := sign(t, f.op, Namespace, blob)
	if _, err := f.v.Verify(blob, sig, nil); err != nil {
		t.Fatal(err)
	}
	later := &Verifier{Keys: f.v.Keys, Nonces: f.v.Nonces, HostID: f.v.HostID, Now: func() time.Time { return t0.Add(2 * time.Hour) }}
	if _, err := later.Recheck(blob, sig, nil); !errors.Is(err, ErrExpired) {
		t.Errorf("Recheck after expiry = %v; want ErrExpired", err)
	}
	text := keyLine(RoleOperational, newSigner(t)) + "\n" + keyLine(RoleRecovery, f.rec) + "\n"
	if _, err := f.v.Keys.rotate(text); err != nil {
		t.Fatal(err)
	}
	if _, err := f.v.Recheck(blob, sig, nil); !errors.Is(err, ErrUnknownSigner) {
		t.Errorf("Recheck after the key was removed = %v; want ErrUnknownSigner", err)
	}
}
