// Package agent is the felhom-agent daemon (`felhom-agent serve`) around
// the playbook engine (runtime/engine): it watches the playbooks
// directory and hot-reloads it, runs playbooks on timers
// (runtime/schedule), signed hub triggers (runtime/hub) and local requests
// (runtime/api), records every run in the store (runtime/store), follows
// interrupted tasks after a crash, and serves metrics and health.
//
// Every front end starts runs through one path, [Agent.start]: it
// resolves the playbooks, coerces the parameters against their
// declarations, records the runs and launches them, or returns one typed
// refusal that each front end only translates into its own answer
// (an HTTP status for the hub and the local API, a log line and a metric
// for a timer).
//
// lifecycle.go gives the start and stop order.
package agent
