// Package proxmox is the typed Proxmox VE client of felhom-agent and the
// fence around the few root-only operations the API cannot do.
//
// Two halves, kept apart on purpose (a test asserts it):
//
//   - [Client] speaks HTTPS to /api2/json with an API token. It never starts
//     a process. Reads retry transient failures; mutations are never retried
//     blindly, and an outcome that cannot be known is reported as
//     [ErrAmbiguous]. Mutations return the [UPID] of their worker task; PVE
//     checks many privileges only when the task runs, so waiting
//     ([Client.WaitTask]) is part of every mutation.
//   - [Privileged] runs a fixed allowlist of root CLI commands through a
//     [Runner], validating every argument first. It never makes an HTTP call.
//
// Both guest kinds are served: every guest operation takes a [GuestKind]
// ([LXC] or [QEMU]) and addresses /nodes/{node}/lxc or /nodes/{node}/qemu;
// [Client.Guests] lists both, each with its Type, and [ArchiveKind] tells a
// backup's kind from its name (vzdump files and Proxmox Backup Server
// snapshots). Whether a change is a task depends on the path: a container's
// config PUT is synchronous, a VM's config POST forks qmconfig.
//
// Errors are typed ([*APIError], [*TaskError]) and classified with
// [IsPermission], [IsLocked], [IsNotFound], [IsAmbiguous] and [Kind].
// Secrets ([TokenSecret]) redact themselves in every printable form.
//
// This package knows nothing of Starlark, playbooks or the daemon.
package proxmox
