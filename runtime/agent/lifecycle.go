package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/guestapi"
)

// The agent's lifecycle, written down once. Each step finishes before the
// next begins.
//
// New:
//
//  1. Check the configuration; build the registry (nothing loaded yet), the
//     engine, the metrics and the scheduler (no timer set yet).
//  2. Lock the state directory (a second agent on it is refused, naming the
//     first one's pid), then open the run store (refused when damaged).
//  3. Bind the TCP listener and the unix socket. Nothing is served yet, so
//     a wrong address or a live agent on the socket fails the start.
//
// Run, starting:
//
//  4. Recover: runs a previous process left running become interrupted,
//     and each Proxmox task without a recorded end is followed on the host
//     in the background until it stops, and recorded. Nothing that started
//     is ever re-run. The felhom_run_last_* metrics are set from the store.
//  5. Start watching the playbooks directory, then load every playbook. A
//     file that fails is logged and counted, and serves its last good
//     version from the version store if it has one; the others serve
//     (each version that loads is saved there). Then the
//     runs a previous process accepted and never started (still queued)
//     are queued again, oldest first: an accepted trigger always runs.
//  6. Set the timers of the loaded playbooks; start handling file events, the
//     scheduler (which catches up a tick missed while the agent was down,
//     once), the Proxmox health probe, the run store's probe, retention
//     and the hub channel (its first report goes out at once; the desired
//     state it holds starts its convergence, once per generation).
//  7. Serve the local API on the socket, then the hub endpoints, /metrics
//     and /healthz on the TCP listener, then the guest API on its own
//     HTTPS listeners (never run control: see runtime/guestapi).
//
// Run, stopping (its context ended, or a listener failed):
//
//  8. Drain: close the TCP listener (no hub trigger is accepted) and the
//     guest API's, refuse
//     local API starts, take the queued runs out of the queue (they stay
//     queued in the store), stop the watcher and the scheduler. From here
//     no run starts.
//  9. Let the runs in flight finish, for up to ShutdownGrace (cut short by
//     Hurry, a second interrupt).
//  10. Stop the runs still going, with the cause engine.ErrInterrupt
//     (recorded interrupted: they resume, or are undone, at the next
//     start — never undone by the stop), and wait for their records.
//  11. Stop background work: task followers leave their tasks open for the
//     next start to follow; the hub channel stops between reports. Close
//     the local API.
//  12. Close the run store, then release the state directory's lock.

// runsHardStop bounds the wait for cancelled runs to record their end
// (step 10). Cancellation reaches every wait of a well-behaved builtin at
// once; this only keeps a stuck one from holding the shutdown forever.
const runsHardStop = 30 * time.Second

// lifecycle runs steps 4 to 11; Run's deferred Close is step 12.
func (a *Agent) lifecycle(ctx context.Context) error {
	// 4. Recover.
	if err := a.recoverRuns(); err != nil {
		return err
	}
	a.loadOutcomes()

	// 5. Load. The watch begins first, so that a save during the load
	// is not missed (at worst it reloads a file twice).
	var w *watcher
	if !a.cfg.NoWatch {
		var err error
		if w, err = newWatcher(a.cfg.PlaybooksDir, a.cfg.Debounce, a.reload, a.log.With("part", "reload")); err != nil {
			a.cancelBG() // the task followers recovery started
			a.bg.Wait()
			return err
		}
	}
	loaded := a.registry.LoadAll()
	a.applyChange(loaded)
	if saved := a.serveSaved(loaded.Failed); !saved.Empty() { // the last good versions of files that do not load
		a.applyChange(saved)
	}
	a.resumeInterrupted() // the runs a previous process was running: resumed or undone
	a.requeue()           // the runs a previous process accepted and never started

	// 6. Timers (set by applyChange), watcher, scheduler, probe, retention.
	partsCtx, stopParts := context.WithCancel(context.Background())
	defer stopParts()
	var parts sync.WaitGroup
	if w != nil {
		parts.Go(func() { w.run(partsCtx) })
	}
	parts.Go(func() { _ = a.sched.Start(partsCtx) })
	a.bg.Go(func() { a.probeLoop(a.bgCtx) })
	a.bg.Go(func() { a.storeProbeLoop(a.bgCtx) })
	a.bg.Go(func() { a.pruneLoop(a.bgCtx) })
	if a.hub != nil {
		a.bg.Go(func() { _ = a.hub.Run(a.bgCtx) })
	}

	// 7. Serve.
	errc := make(chan error, 2+len(a.GuestAPIAddrs()))
	var unixSrv, tcpSrv *http.Server
	if a.unix != nil {
		unixSrv = &http.Server{Handler: api.NewHandler(localAPI{a}, a.log.With("part", "api")), ReadHeaderTimeout: 10 * time.Second}
		go serve(unixSrv, a.unix, errc)
	}
	if a.tcp != nil {
		tcpSrv = &http.Server{
			Handler:           a.tcpHandler(),
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    16 << 10,
		}
		go serve(tcpSrv, a.tcp, errc)
	}
	var guestSrvs []*http.Server
	if a.guest != nil {
		gs := guestapi.New(guestBackend{a}, a.guestOptions())
		for _, ln := range a.guest.lns {
			srv := gs.HTTPServer()
			srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{a.guest.cert}, MinVersion: tls.VersionTLS12}
			guestSrvs = append(guestSrvs, srv)
			go serve(srv, tls.NewListener(ln, srv.TLSConfig), errc)
		}
		a.log.Info("guest API serving", "listen", a.GuestAPIAddrs(), "fingerprint", a.guest.fingerprint, "endpoint", a.guest.endpoint)
	}
	a.log.Info("agent serving", "playbooks", len(a.registry.Playbooks()), "listen", addrString(a.Addr()),
		"socket", a.cfg.Socket)

	var runErr error
	select {
	case <-ctx.Done():
		a.log.Info("agent stopping", "grace", a.cfg.ShutdownGrace)
	case runErr = <-errc:
		a.log.Error("agent stopping: a listener failed", "err", runErr)
	}

	// 8. Drain.
	a.mu.Lock()
	a.draining = true
	a.mu.Unlock()
	a.queues.drain() // queued runs leave the queue, still queued in the store
	if tcpSrv != nil {
		shutdown(tcpSrv, 5*time.Second)
	}
	for _, srv := range guestSrvs {
		shutdown(srv, 5*time.Second)
	}
	stopParts()
	parts.Wait()
	if a.hooks.draining != nil {
		a.hooks.draining()
	}

	// 9. Grace.
	if !a.waitGrace(a.cfg.ShutdownGrace) {
		// 10. Cancel.
		a.log.Warn("grace period over; cancelling the runs still going", "runs", len(a.liveIDs()))
		a.cancelRuns(errShutdown)
		if !a.waitRuns(runsHardStop) {
			a.log.Error("runs did not stop after being cancelled; closing the store under them", "runs", a.liveIDs())
		}
	}
	a.sched.Wait()

	// 11. Background work, local API.
	a.cancelBG()
	a.bg.Wait()
	if unixSrv != nil {
		shutdown(unixSrv, 2*time.Second)
	}
	a.log.Info("agent stopped")
	return runErr
}

// serve serves srv on ln, reporting a failure other than a shutdown.
func serve(srv *http.Server, ln net.Listener, errc chan<- error) {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		errc <- err
	}
}

// shutdown stops srv gracefully within d, then closes what is left.
func shutdown(srv *http.Server, d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if srv.Shutdown(ctx) != nil {
		_ = srv.Close()
	}
}

// waitRuns waits up to d (negative: not at all) for every run to end and
// reports whether they did.
func (a *Agent) waitRuns(d time.Duration) bool { return a.waitRunsUntil(d, nil) }

// waitGrace is waitRuns for the grace period, which Hurry cuts short.
func (a *Agent) waitGrace(d time.Duration) bool { return a.waitRunsUntil(d, a.hurry.ch) }

// waitRunsUntil is waitRuns that also gives up when stop is closed.
func (a *Agent) waitRunsUntil(d time.Duration, stop <-chan struct{}) bool {
	done := make(chan struct{})
	go func() {
		a.running.Wait()
		close(done)
	}()
	if d < 0 {
		d = 0
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-stop:
		select {
		case <-done:
			return true
		default:
			return false
		}
	case <-t.C:
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
}

// liveIDs lists the runs in flight.
func (a *Agent) liveIDs() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	ids := make([]string, 0, len(a.live))
	for id := range a.live {
		ids = append(ids, id)
	}
	return ids
}

// tcpHandler is everything the TCP listener serves: the hub endpoints,
// /metrics and /healthz. Run control stays on the unix socket.
func (a *Agent) tcpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.metricsHandler())
	mux.HandleFunc("GET /healthz", a.serveHealth)
	// The hub handler owns its routes (hub.NewHandler); it is swapped
	// whole when the hub keys change, so the prefix forwards to the
	// current one.
	mux.Handle("/v1/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*a.hubHandler.Load()).ServeHTTP(w, r)
	}))
	return mux
}

func addrString(addr net.Addr) string {
	if addr == nil {
		return ""
	}
	return addr.String()
}
