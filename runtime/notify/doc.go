// Package notify tells people when something needs them: a run that
// failed or timed out, a timer tick that was missed, or a playbook's own
// notify.send. It delivers each [Event] as a signed JSON webhook and/or a
// mail through an SMTP relay, retried with backoff, recorded, and never
// blocking the caller.
//
// # Webhook
//
// POST to Config.WebhookURL with the Event as its JSON body and the three
// headers of a hub trigger (runtime/hub: X-Felhom-Key, X-Felhom-Timestamp,
// X-Felhom-Signature), signed with the agent's own Ed25519 key — the
// scheme the hub signs triggers with, the other way round. The key is
// generated in the state directory on first use ([LoadOrCreateKey]); its
// public half is logged at start and written beside it, for the receiver
// to verify with. Any 2xx answer is delivered; anything else is retried.
//
// # Mail
//
// Through Config.SMTP.Addr with STARTTLS when the relay offers it, PLAIN
// authentication when a username is set (net/smtp refuses it without TLS
// except on loopback), one plain-text mail per event to every recipient.
//
// # Delivery
//
// Notify queues and returns; one goroutine per channel delivers in order.
// A failed attempt is retried after Backoff, doubling up to MaxBackoff,
// for MaxAttempts in all; each event's outcome on each channel is a line
// of the journal (Config.Journal, JSON lines) and a count in Stats. A full
// queue drops the event, logs and counts it: a stuck relay never holds a
// run. Secrets (the SMTP password, the key) never reach a log or the
// journal.
package notify
