// Package safety is the safety gate: no destructive Proxmox or root
// operation happens without an operator's signature or a target the run
// itself created (docs/safety.md holds the contract).
//
// It has four parts, each in its own file:
//
//   - classify.go: every mutation and changing root command is classified
//     by its effect — benign or destructive — from what it would do, the
//     run's own record (the guests and snapshots its tasks created) and the
//     configured scratch guests; what the classifier does not know is
//     destructive.
//   - gate.go: [Gate], the proxmox.MutationGate and proxmox.RootGate every
//     run's context carries. A benign call passes; a destructive one passes
//     only when the run carries a verified operator signature that covers
//     it, and otherwise goes to the run's [Approver] (park the run with a
//     pending operation, let the simulated operator sign, or refuse).
//     Every decision is an [AuditEntry].
//   - op.go and verify.go: the signed operation (a canonical JSON [Op]),
//     the SSHSIG signature over its raw bytes (namespace felhom-op-v1,
//     github.com/hiddeco/sshsig over golang.org/x/crypto/ssh) and
//     [Verifier], which checks armour, namespace, allow-listed key
//     material, signature, target host, time window and — last, durably —
//     the nonce.
//   - keys.go and nonces.go: the operator allow-list with its roles
//     (operational, recovery) and its signed rotation, and the durable
//     nonce record.
//
// The package follows the Felhom platform's published design
// (architecture part 3 §4, part 4 "control-plane authorization").
package safety
