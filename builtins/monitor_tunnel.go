package builtins

import (
	"context"
	"fmt"
	"net"
	"time"

	"go.starlark.net/starlark"
)

const tunnelMonitorDoc = "Checks the hub tunnel by opening a TCP connection to its endpoint within timeout " +
	"(a duration, \"3s\" or int seconds). Returns struct(endpoint, up, latency (duration of the dial), error " +
	"(\"\" when up)); an unreachable or unconfigured endpoint is up = False, not a failure. Fails only when the run " +
	"is cancelled."

// tunnelMonitor dials Env.Tunnel.
type tunnelMonitor struct{ timeout time.Duration }

const defaultTunnelTimeout = 3 * time.Second

func configureTunnel(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (monitor, error) {
	var timeout durationArg
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "timeout??", &timeout); err != nil {
		return nil, err
	}
	if !timeout.set {
		return tunnelMonitor{timeout: defaultTunnelTimeout}, nil
	}
	if timeout.d <= 0 {
		return nil, fmt.Errorf("%s: timeout must be positive", b.Name())
	}
	return tunnelMonitor{timeout: timeout.d}, nil
}

// TunnelHealth is the tunnel check's result, as monitor.tunnel() returns it.
type TunnelHealth struct {
	Endpoint string
	Up       bool
	Latency  time.Duration // of the dial
	Error    string        // "" when up
}

func (r TunnelHealth) value() starlark.Value {
	return newStruct(starlark.StringDict{
		"endpoint": starlark.String(r.Endpoint),
		"up":       starlark.Bool(r.Up),
		"latency":  durationValue(r.Latency),
		"error":    starlark.String(r.Error),
	})
}

func (m tunnelMonitor) read(ctx context.Context, env *Env) (reading, error) {
	result := func(up bool, latency time.Duration, msg string) reading {
		return TunnelHealth{Endpoint: env.Tunnel, Up: up, Latency: latency, Error: msg}
	}
	if env.Tunnel == "" {
		return result(false, 0, "no tunnel endpoint configured"), nil
	}
	if _, _, err := net.SplitHostPort(env.Tunnel); err != nil {
		return result(false, 0, fmt.Sprintf("endpoint %q is not host:port: %v", env.Tunnel, err)), nil
	}
	d := net.Dialer{Timeout: m.timeout}
	start := time.Now()
	conn, err := d.DialContext(ctx, "tcp", env.Tunnel)
	latency := time.Since(start)
	if err != nil {
		if ctx.Err() != nil { // the run was cancelled: that is not the tunnel's state
			return nil, context.Cause(ctx)
		}
		return result(false, latency, err.Error()), nil
	}
	_ = conn.Close() // only reachability is measured
	return result(true, latency, ""), nil
}
