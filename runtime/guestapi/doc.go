// Package guestapi is the guest API: the HTTPS server in-guest
// controllers talk to about their own guest, and only their own guest.
//
// A request carries its guest's bearer token; the token is the guest's
// identity (paths carry no vmid). The server hashes it (SHA-256), asks
// the [Backend] which guest holds that hash, and answers only about that
// guest. Without a token, or with one no guest holds, the answer is 401;
// a reference to anything of another guest (a backup job id) is 403 and
// is logged. Every answer is the envelope {"ok": bool, "data": ...,
// "error": "..."} the Felhom controller's agentapi client reads; answers
// never carry a token, a host path or another guest's data.
//
// The surface is narrow and fixed: GET /storage, GET /status,
// GET /health, POST /backup, GET /backup/due, GET /backup/status,
// GET /restore-test/status, POST /guest/reboot, and the disk endpoints
// (/disks, /disks/assign, /disks/eject, /disks/format), which answer 501
// until storage management exists. docs/guest-api.md is the contract.
//
// Limits: each guest has its own request rate (a token bucket), its own
// cap on requests in flight and a body limit; requests without a valid
// token are rate limited per remote address. One guest's flood is
// refused with 429 cheaply, before any work, so it never delays another
// guest's answers.
//
// The package is a leaf: the standard library only. The daemon
// (runtime/agent) implements Backend.
package guestapi
