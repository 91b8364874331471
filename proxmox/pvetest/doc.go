// Package pvetest holds conformance suites for the Proxmox VE API as
// felhom-agent uses it, runnable against any implementation: the
// simulator (proxmox/pvesim) in every test run, and a real PVE 8 host
// when one is configured.
//
// [Conformance] drives a [proxmox.Client] through every method it has —
// reads, mutations and their task waits — and through the failure paths
// flows depend on: a missing guest, a taken or missing snapshot name, a
// guest already running or not running, a lock, a permission refused at
// the request or inside the task, per-parameter 400s, synchronous config
// changes, vzdump archive names, restore with and without force — and,
// given a VM (World.StoppedVM), what differs for QEMU guests. Each case
// names the PVE rule it checks, after the facts collected (with their
// sources) in the project's PVE API notes (shared/pve-api/README.md); when a case fails, its rule is
// logged beside the failure, so a failure against the simulator points at
// the simulator or the client, and a failure against a real host points at
// the simulator's model of it.
//
// [ThirdParty], [Proxmoxer] and [Ansible] check the same host from the
// outside, as other clients see it: raw form-encoded HTTP with a
// PVEAPIToken header, the Python library proxmoxer, and Ansible's
// community.general Proxmox modules (each skipped where it is not
// installed); the nested module goclient does the same with the Go client
// github.com/luthermonson/go-proxmox.
// Given a cluster (World.Cluster) they also drive what a node of one
// answers: cluster status and resources, another node's guests, an
// HA-managed guest, migrations and a node that is down. A flow script
// asks the test for what it cannot make itself (a task held running, a
// node down) over its stdin and stdout (flowhooks.go).
// Passing them against the simulator is what "a third-party client could
// not tell it from a host" means in practice.
//
// What a suite may assume and change is described by a [World]; hooks the
// implementation cannot offer (forcing a lock, withdrawing a privilege)
// are left nil, and the cases needing them skip, saying why.
//
// [Serve] is the rig of tests that talk to the simulator as the agent
// talks to a host: the simulator served over TLS for the test, and a
// client pinned to its certificate.
//
// This package is for tests only: it imports testing, and nothing the
// agent binary links may import it.
package pvetest
