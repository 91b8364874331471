// Package api is the agent's local API, served on a unix socket, and the
// client that the felhom-agent command line uses to talk to a serving
// agent (runs list|show|follow|cancel, trigger, playbooks).
//
// Access control is the socket file's permissions: [Listen] creates it with
// mode 0660, so the agent's user and group may connect and nobody else.
// There is no other authentication; do not proxy this handler onto TCP.
//
// # Routes
//
//	GET  /v1/runs?playbook=&status=&limit=   {"runs": [Run...]}, newest first
//	POST /v1/runs                            TriggerRequest -> 202 Run ({"runs": [Run...]} by trigger)
//	GET  /v1/runs/{id}                       Run (id: a run id or a unique prefix of one)
//	GET  /v1/runs/{id}/logs?after=&limit=    {"lines": [LogLine...]}, Seq > after, oldest first
//	GET  /v1/runs/{id}/follow?after=         NDJSON stream of FollowEvent until the run ends
//	POST /v1/runs/{id}/cancel                202 Run (cancellation requested)
//	GET  /v1/playbooks                       {"playbooks": [Playbook...]}
//	POST /v1/plan                            TriggerRequest (playbook) -> 200 the plan (Planner; 503 without)
//
// Errors are JSON [Error] bodies: 400 names the field or parameter at
// fault, 404 an unknown run or playbook, 409 a request the run's state
// forbids (cancelling a finished run), 500 an internal failure whose detail
// is in the agent's log only.
//
// The daemon (package runtime/agent) implements [Backend] and serves
// [NewHandler] on [Listen]; the command line uses [Client]. This package
// imports only the standard library.
package api
