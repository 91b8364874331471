// Package hub verifies and answers the signed requests with which the
// felhom hub starts playbooks on an agent and follows the runs it started.
//
// # Protocol
//
// The hub speaks to the agent's TCP listener:
//
//	POST /v1/triggers      body {"id": "<idempotency key>", "trigger": "<name>", "params": {...}}
//	GET  /v1/runs/{id}     empty body; only runs that hub triggers started
//
// Every request carries three headers:
//
//	X-Felhom-Key        the id of the key that signed it (configured in hub.keys)
//	X-Felhom-Timestamp  unix seconds when it was signed
//	X-Felhom-Signature  standard base64 of the Ed25519 signature over
//	                    METHOD "\n" PATH "\n" TIMESTAMP "\n" hex(sha256(body))
//
// PATH is the request's decoded URL path (net/url's URL.Path) without the
// query string, exactly as the client asked for it: mount the handler at the
// root of the listener, never behind http.StripPrefix, or signatures stop
// verifying. The hash is lowercase hex; the body of a GET is empty, so its
// hash is that of the empty string.
//
// # Answers
//
//	202 {"runs": [{"id": "...", "playbook": "..."}]}   a new trigger started these runs
//	200 {"runs": [...]}                                 a repeated id: the runs it started before
//	400 {"error": "...", "field": "..."}                malformed JSON or a refused parameter
//	401 {"error": "..."}                                missing, unknown, forged or stale signature
//	404 {"error": "..."}                                no playbook answers the trigger / no such run
//	413 {"error": "..."}                                body larger than Verifier.MaxBody
//
// A rejected request starts nothing. What the client sees is a short public
// message ([Rejection.Public]); the cause goes to the agent's log only.
//
// # Replay
//
// A timestamp more than [DefaultMaxSkew] away from the agent's clock, past
// or future, is refused, so a captured request is useless after five
// minutes. Within that window the idempotency id carries the weight: a
// captured POST replayed with its id (it cannot be changed without
// breaking the signature) gets the runs the original started, with 200, and
// starts nothing. A replayed GET only reads. The agent therefore keeps trigger
// ids for at least the skew window; the run store keeps them for good.
//
// This package imports only the standard library. The daemon (package
// runtime) implements [Backend] and mounts [NewHandler]; the hub and the end
// to end suite sign requests with [Sign].
package hub
