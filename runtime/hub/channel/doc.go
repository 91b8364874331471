// Package channel is the agent's side of the hub channel the Felhom
// platform uses: the agent dials out (hosts sit behind NAT; the hub never
// connects in), POSTs a host report to POST /api/v1/host-report at once
// and then every poll interval, and reads the hub's answer, the control
// envelope. When the envelope announces a desired-state generation newer
// than the cached one, the agent fetches GET
// /api/v1/hosts/{host_id}/desired-state, validates it against the schema
// this agent owns ([ParseDesiredState]) and keeps the last good one.
//
// Everything the hub answers is untrusted input: bodies are size-bounded,
// fields typed and ranged, and a bad answer never replaces good state.
// The hub may be down for days; [Channel.Run] retries with capped,
// jittered backoff, builds a fresh report each attempt (a report never
// queues behind another) and catches up when the hub returns.
//
// docs/hub-protocol.md holds the contract with examples. The package
// imports only the standard library, proxmox (for its one TLS trust
// implementation) and internal/clip.
package channel
