package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"gitea.dooplex.hu/admin/felhom-agent/internal/clip"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// Health: a background probe asks the Proxmox API for its version, at
// start and then every HealthInterval. The agent serves whatever the
// answer (triggers are accepted and recorded while Proxmox is down; their
// runs fail on their own terms), reports it on /healthz and as
// felhom_proxmox_up, and recovers by itself when Proxmox comes back.

// healthProbeTimeout bounds one probe, retries included.
const healthProbeTimeout = 15 * time.Second

type healthState struct {
	mu      sync.Mutex
	ok      bool
	err     string
	checked time.Time // zero until the first probe ends
	cluster *ClusterHealth
}

func newHealthState() *healthState { return &healthState{err: "not checked yet"} }

// Health is the body of GET /healthz.
type Health struct {
	// Status is "ok" when Proxmox answered the last probe, the run store
	// can write and every playbook file loads, else "degraded" (the agent
	// still serves what it can: while the store cannot write, triggers
	// are refused with 503).
	Status     string        `json:"status"`
	Proxmox    ProxmoxHealth `json:"proxmox"`
	Store      StoreHealth   `json:"store"`
	Playbooks  int           `json:"playbooks"`   // playbooks serving
	LoadErrors int           `json:"load_errors"` // files whose latest version was refused
	// PlaybookErrors says, for each file whose latest version was refused,
	// why and what serves in its place.
	PlaybookErrors []PlaybookError `json:"playbook_errors,omitempty"`
}

// PlaybookError is one playbook file whose latest version does not load.
type PlaybookError struct {
	File  string `json:"file"`  // relative to the playbooks directory
	Error string `json:"error"` // its first diagnostic, file:line:col: message (clipped)
	// Serving is the version serving in its place ("" for none); Saved
	// says it is the last good version from the version store (the file
	// has not loaded since the agent started).
	Serving string `json:"serving,omitempty"`
	Saved   bool   `json:"saved,omitempty"`
}

// StoreHealth is whether the run store could write at its last write.
type StoreHealth struct {
	OK    bool       `json:"ok"`
	Error string     `json:"error,omitempty"` // the last write's failure while not OK
	Since *time.Time `json:"since,omitempty"` // when OK last changed
}

// Store probes: while the store cannot write, a small write is tried every
// storeProbeFailing so that it is seen to recover (and triggers are taken
// again) without waiting for one to try; while it can, every
// HealthInterval, so that a disk that filled up while the agent was idle
// shows on /healthz.
const storeProbeFailing = 2 * time.Second

// storeProbeLoop runs until ctx ends.
func (a *Agent) storeProbeLoop(ctx context.Context) {
	for {
		wait := a.cfg.HealthInterval
		if !a.store.Health().OK {
			wait = storeProbeFailing
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		was := a.store.Health().OK
		err := a.store.Probe(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && was:
			a.log.Error("the run store cannot write; triggers are refused until it can", "err", err)
		case err == nil && !was:
			a.log.Info("the run store can write again; triggers are taken")
		}
	}
}

// storeUpMetric is felhom_store_up, read from the store's health at each
// scrape.
func (a *Agent) storeUpMetric() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "felhom_store_up", Help: "1 when the run store's last write committed, else 0 (triggers are refused with 503).",
	}, func() float64 {
		if a.store.Health().OK {
			return 1
		}
		return 0
	})
}

// ProxmoxHealth is the outcome of the last probe of the Proxmox API.
type ProxmoxHealth struct {
	OK      bool       `json:"ok"`
	Error   string     `json:"error,omitempty"`
	Checked *time.Time `json:"checked,omitempty"` // absent before the first probe ended
	// Cluster is what the last probe read of the node's cluster; absent
	// before Proxmox first answered (and when the client cannot read it).
	Cluster *ClusterHealth `json:"cluster,omitempty"`
}

// ClusterHealth is the configured node's place in its cluster, from GET
// /cluster/status. A configured node that the answering host is not
// (a wrong proxmox.node) makes the Proxmox health fail, naming both.
type ClusterHealth struct {
	Node    string   `json:"node"`           // the configured node, as the host answered it
	Name    string   `json:"name,omitempty"` // the cluster's name; "" for a node in no cluster
	Quorate bool     `json:"quorate"`
	Members int      `json:"members"`
	Offline []string `json:"offline,omitempty"` // members corosync does not see
}

// clusterReader is the part of *proxmox.Client the probe uses to check
// the configured node against the host's own view of itself.
type clusterReader interface {
	Node() string
	ClusterStatus(ctx context.Context) (proxmox.ClusterStatus, error)
}

// checkNode compares the configured node with GET /cluster/status: the
// answering node (its "local" entry) must be it. The error names both.
func checkNode(st proxmox.ClusterStatus, node string) (*ClusterHealth, error) {
	ch := &ClusterHealth{Node: node, Name: st.Name, Quorate: st.Quorate, Members: len(st.Members), Offline: st.Offline()}
	var local, names []string
	for _, m := range st.Members {
		names = append(names, m.Name)
		if m.Local {
			local = append(local, m.Name)
		}
	}
	switch {
	case len(local) == 1 && local[0] == node:
		return ch, nil
	case len(local) == 1 && st.Name == "":
		return ch, fmt.Errorf("proxmox.node is %q, but this Proxmox VE host is node %q", node, local[0])
	case len(local) == 1 && slices.Contains(names, node):
		return ch, fmt.Errorf("proxmox.node is %q, but the API endpoint is node %q of cluster %s: point the agent at its own node's API", node, local[0], st.Name)
	case len(local) == 1:
		return ch, fmt.Errorf("proxmox.node is %q, but the API endpoint is node %q, and cluster %s has no node %q (members: %s)", node, local[0], st.Name, node, strings.Join(names, ", "))
	}
	return ch, nil // no local entry to compare with
}

// probeLoop probes at once and then every HealthInterval until ctx ends,
// each probe followed by the pass over the cluster's bootstrap
// directories (guestbootdirs.go).
func (a *Agent) probeLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.HealthInterval)
	defer t.Stop()
	for {
		a.probe(ctx)
		a.bootDirsPass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probe asks Proxmox for its version once and records the outcome.
func (a *Agent) probe(ctx context.Context) {
	client := a.cfg.Proxmox
	var errMsg, detail string
	if client == nil {
		errMsg = "no Proxmox client is configured"
	} else {
		pctx, cancel := context.WithTimeout(proxmox.WithObserver(ctx, metricsObserver{a.metrics}), healthProbeTimeout)
		_, err := client.Version(pctx)
		if cr, ok := client.(clusterReader); ok && err == nil {
			var st proxmox.ClusterStatus
			st, err = cr.ClusterStatus(pctx)
			if _, denied := proxmox.IsPermission(err); denied {
				err = nil // a token without Sys.Audit on /: the node goes unchecked
			} else if err == nil {
				var ch *ClusterHealth
				if ch, err = checkNode(st, cr.Node()); err != nil {
					errMsg = err.Error() // names only node names: fit for /healthz
				}
				a.health.mu.Lock()
				a.health.cluster = ch
				a.health.mu.Unlock()
			}
		}
		cancel()
		if ctx.Err() != nil {
			return // shutting down: not news about Proxmox
		}
		if err != nil && errMsg == "" {
			// /healthz is unauthenticated: it says what kind of problem
			// there is; the log has the full error.
			errMsg, detail = publicReason(err), err.Error()
		}
	}
	h := a.health
	h.mu.Lock()
	was, wasErr := h.ok, h.err
	h.ok, h.err, h.checked = errMsg == "", errMsg, time.Now()
	h.mu.Unlock()
	if a.hooks.probed != nil {
		defer a.hooks.probed()
	}
	if errMsg == "" {
		a.metrics.proxmoxUp.Set(1)
		if !was {
			a.log.Info("Proxmox API reachable")
		}
		return
	}
	a.metrics.proxmoxUp.Set(0)
	if was || wasErr != errMsg {
		a.log.Warn("Proxmox API unreachable; serving anyway", "reason", errMsg, "err", detail)
	}
}

// publicReason says what kind of problem err is, without addresses, paths
// or messages from the host.
func publicReason(err error) string {
	var fp *proxmox.FingerprintError
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var hostname x509.HostnameError
	var cve *tls.CertificateVerificationError
	switch {
	case errors.As(err, &fp), errors.As(err, &unknown), errors.As(err, &invalid), errors.As(err, &hostname), errors.As(err, &cve):
		return "TLS verification of the Proxmox API failed"
	case errors.Is(err, context.DeadlineExceeded):
		return "the Proxmox API did not answer in time"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "the Proxmox API refused the connection (unreachable)"
	}
	if ae, ok := errors.AsType[*proxmox.APIError](err); ok {
		if ae.Status == http.StatusUnauthorized {
			return "the Proxmox API refused the token (HTTP 401)"
		}
		return fmt.Sprintf("the Proxmox API answered HTTP %d", ae.Status)
	}
	return "the Proxmox API is unreachable"
}

// Health reports the agent's health as /healthz does.
func (a *Agent) Health() Health {
	a.health.mu.Lock()
	px := ProxmoxHealth{OK: a.health.ok, Error: a.health.err, Checked: timePtr(a.health.checked), Cluster: a.health.cluster}
	a.health.mu.Unlock()
	sh := a.store.Health()
	h := Health{Proxmox: px, Store: StoreHealth{OK: sh.OK, Error: sh.Err, Since: timePtr(sh.Since)},
		Playbooks: len(a.registry.Playbooks())}
	for _, e := range a.registry.Entries() {
		if len(e.Diagnostics) > 0 {
			h.LoadErrors++
			pe := PlaybookError{File: e.File, Error: clip.Line(e.Diagnostics[0].String(), 300)}
			if e.Playbook != nil {
				pe.Serving, pe.Saved = e.Playbook.ShortVersion(), e.Playbook.Saved
			}
			h.PlaybookErrors = append(h.PlaybookErrors, pe)
		}
	}
	h.Status = "ok"
	if !px.OK || !h.Store.OK || h.LoadErrors > 0 {
		h.Status = "degraded"
	}
	return h
}

// serveHealth answers GET /healthz: 200 when ok, 503 when degraded, with
// the Health as JSON either way.
func (a *Agent) serveHealth(w http.ResponseWriter, _ *http.Request) {
	h := a.Health()
	status := http.StatusOK
	if h.Status != "ok" {
		status = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(h)
}
