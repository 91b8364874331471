package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// Globals are the flags every command shares, and the configuration they
// resolve to. Each configurable flag has three sources, strongest first:
//
//  1. the command-line flag,
//  2. its FELHOM_AGENT_* environment variable (named from the flag:
//     --proxmox-ca-file is FELHOM_AGENT_PROXMOX_CA_FILE),
//  3. the JSON file given by --config, at the key in the flag's `config`
//     tag (deploy/agent.example.json documents every key).
//
// All three go through kong: the file is a kong.Resolver (jsonConfig).
type Globals struct {
	Config    kong.ConfigFlag `help:"JSON configuration file (see deploy/agent.example.json)." placeholder:"FILE"`
	LogLevel  string          `help:"Log level: debug, info, warn or error." enum:"debug,info,warn,error" default:"info" config:"log_level"`
	LogFormat string          `help:"Log format: text (for people) or json (one object per line)." enum:"text,json" default:"text" config:"log_format"`
	Playbooks string          `help:"Directory of playbooks and their lib/ (the root that load() resolves in)." default:"/etc/felhom-agent/playbooks" placeholder:"DIR" config:"playbooks"`

	Proxmox    ProxmoxFlags    `embed:"" prefix:"proxmox-"`
	Privileged PrivilegedFlags `embed:"" prefix:"privileged-"`
	Runtime    RuntimeFlags    `embed:"" prefix:"runtime-"`
	Safety     SafetyFlags     `embed:"" prefix:"safety-"`
	Tunnel     string          `name:"monitor-tunnel" help:"host:port of the tunnel endpoint monitor.tunnel() checks; empty disables it." placeholder:"HOST:PORT" config:"monitor.tunnel"`

	stdout, stderr io.Writer
	color          bool // stdout gets colour (color.go)
}

// ProxmoxFlags say how to reach and trust the Proxmox VE API. They become a
// proxmox.Config; see that type for what each zero value means.
type ProxmoxFlags struct {
	Endpoint           string        `help:"Proxmox VE API endpoint, https://HOST:8006." config:"proxmox.endpoint"`
	Node               string        `help:"Name of this host's PVE node." config:"proxmox.node"`
	Token              string        `help:"API token USER@REALM!TOKENID=SECRET (prefer the environment or the config file: flags show in ps)." config:"proxmox.token"`
	TLSFingerprint     string        `name:"tls-fingerprint" help:"SHA-256 fingerprint of the host's certificate to pin (AB:CD:...)." config:"proxmox.fingerprint"`
	CAFile             string        `name:"ca-file" help:"PEM CA bundle to verify the host's certificate (e.g. pve-root-ca.pem)." config:"proxmox.ca_file"`
	InsecureSkipVerify bool          `help:"Do not verify the host's TLS certificate (labs only; never the default)." config:"proxmox.insecure_skip_verify"`
	Timeout            time.Duration `help:"Timeout of one API request." default:"30s" config:"proxmox.timeout"`
	ReadRetryBudget    time.Duration `help:"How long a read keeps retrying while the API is unavailable (502/503, refused or dropped connections); 0 never retries." default:"30s" config:"proxmox.read_retry_budget"`
}

// PrivilegedFlags enable and fence the root-only host operations.
type PrivilegedFlags struct {
	Enabled     bool   `help:"Enable the host module (golden-image create, USB mount, SMART, sensors) through the fenced root commands." config:"privileged.enabled"`
	Sudo        bool   `help:"Run the fenced commands through sudo -n (see deploy/sudoers)." default:"true" negatable:"" config:"privileged.sudo"`
	MountPrefix string `help:"Directory below which USB disks may be mounted." default:"/mnt/felhom" placeholder:"DIR" config:"privileged.mount_prefix"`
}

// RuntimeFlags bound what runs may consume.
type RuntimeFlags struct {
	MaxConcurrent int    `help:"Runs executing at once; more wait for a slot." default:"${max_concurrent}" config:"runtime.max_concurrent"`
	MaxSteps      uint64 `help:"Starlark steps one run may take before it is stopped." default:"${max_steps}" config:"runtime.max_steps"`
	MaxMemoryMiB  int64  `name:"max-memory-mib" help:"Go heap (MiB) above which the runs executing Starlark are stopped; 0 disables the guard." default:"${max_memory_mib}" config:"runtime.max_memory_mib"`
}

// ClientConfig turns the flags into a validated proxmox.Config. Every
// problem is reported, each naming its configuration key; the token secret
// never appears in an error.
func (p ProxmoxFlags) ClientConfig() (proxmox.Config, error) {
	cfg := proxmox.Config{
		Endpoint:           p.Endpoint,
		Node:               p.Node,
		CAFile:             p.CAFile,
		Fingerprint:        p.TLSFingerprint,
		InsecureSkipVerify: p.InsecureSkipVerify,
		Timeout:            p.Timeout,
		ReadRetryBudget:    p.ReadRetryBudget,
	}
	if p.ReadRetryBudget == 0 {
		cfg.ReadRetryBudget = -1 // the flag's 0 is "never", the Config's "the default"
	}
	var errs []error
	tokenFailed := false
	if p.Token != "" {
		tok, err := proxmox.ParseToken(p.Token)
		if err != nil {
			errs, tokenFailed = append(errs, fmt.Errorf("proxmox.token: %w", err)), true
		}
		cfg.Token = tok
	}
	if err := cfg.Validate(); err != nil {
		all := []error{err}
		if joined, ok := err.(interface{ Unwrap() []error }); ok {
			all = joined.Unwrap()
		}
		for _, e := range all {
			// A token that failed to parse is already reported above.
			if tokenFailed && strings.HasPrefix(e.Error(), "proxmox.token:") {
				continue
			}
			errs = append(errs, e)
		}
	}
	return cfg, errors.Join(errs...)
}

// jsonConfig is the kong.ConfigurationLoader for --config: a JSON object
// whose keys (nested objects joined with '.') are the `config` tags of the
// flags. Unknown keys are an error naming the key, so a typo is never
// silently ignored. A flag whose environment variable is set keeps the
// environment's value: the file is the weakest source.
//
// A file that holds the API token is a key file, and is treated as ssh
// treats one: if others may read it, or anyone but its owner may write it,
// it is refused (checkConfigMode). A file others may write is refused
// whatever it holds: it says which host to trust and where playbooks are.
func jsonConfig(r io.Reader) (kong.Resolver, error) {
	src, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		if se, ok := errors.AsType[*json.SyntaxError](err); ok {
			line, col := lineCol(src, se.Offset-1) // Offset is just past the bad byte
			return nil, fmt.Errorf("config: line %d, column %d: %w", line, col, err)
		}
		return nil, fmt.Errorf("config: %w", err)
	}
	flat := map[string]any{}
	flatten("", doc, flat)
	if f, ok := r.(*os.File); ok {
		_, hasToken := flat["proxmox.token"]
		if err := checkConfigMode(f, hasToken); err != nil {
			return nil, err
		}
	}
	return &configResolver{values: flat}, nil
}

// checkConfigMode refuses a configuration file whose permissions let
// others change it, or — when it holds the token — read it or let its
// group change it. Group read stays allowed: the documented deployment is
// root:felhom-agent 0640.
func checkConfigMode(f *os.File, hasToken bool) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	mode := fi.Mode().Perm()
	switch {
	case mode&0o002 != 0:
		return fmt.Errorf("config: %s is writable by others (mode %04o): anyone could point the agent at another host; chmod o-w it", f.Name(), mode)
	case hasToken && mode&0o004 != 0:
		return fmt.Errorf("config: %s holds proxmox.token and is readable by others (mode %04o); chmod 0640 (or 0600) it, or give the token in FELHOM_AGENT_PROXMOX_TOKEN", f.Name(), mode)
	case hasToken && mode&0o020 != 0:
		return fmt.Errorf("config: %s holds proxmox.token and is writable by its group (mode %04o); chmod 0640 (or 0600) it", f.Name(), mode)
	}
	return nil
}

// lineCol is the 1-based line and column of the byte at offset in src.
func lineCol(src []byte, offset int64) (line, col int) {
	before := src[:min(max(int(offset), 0), len(src))]
	line = bytes.Count(before, []byte("\n")) + 1
	col = len(before) - bytes.LastIndexByte(before, '\n')
	return line, col
}

type configResolver struct{ values map[string]any }

// Validate rejects keys that no flag of the application reads.
func (c *configResolver) Validate(app *kong.Application) error {
	known := map[string]*kong.Flag{}
	_ = kong.Visit(app, func(n kong.Visitable, next kong.Next) error {
		if f, ok := n.(*kong.Flag); ok {
			if key := f.Tag.Get("config"); key != "" {
				known[key] = f
			}
		}
		return next(nil)
	})
	for _, k := range slices.Sorted(maps.Keys(c.values)) {
		if _, ok := known[k]; !ok {
			return fmt.Errorf("config: unknown key %q", k)
		}
	}
	return nil
}

// checkShape refuses a JSON array or object (or a number or boolean given
// for a string) at a key whose flag takes one value of another kind, naming
// the key and the JSON type but never the value: a token given as
// ["..."] would otherwise become the string `["..."]` and reach an error
// message whole.
func checkShape(key string, f *kong.Flag, v any) error {
	kind := f.Target.Kind()
	got := ""
	switch v.(type) {
	case []any:
		got = "an array"
	case map[string]any:
		got = "an object"
	case json.Number:
		got = "a number"
	case bool:
		got = "a boolean"
	case nil:
		got = "null"
	}
	switch {
	case got == "":
		return nil
	case kind == reflect.Slice || kind == reflect.Map, got == "an object" && isLeafObject(key):
		return nil
	case (got == "an array" || got == "an object" || got == "null") || kind == reflect.String:
		want := "a string"
		switch kind {
		case reflect.Bool:
			want = "true or false"
		case reflect.Int, reflect.Int64, reflect.Uint64, reflect.Uint, reflect.Int32:
			want = "a number"
			if f.Target.Type() == reflect.TypeFor[time.Duration]() {
				want = `a duration string such as "30s"`
			}
		}
		return fmt.Errorf("config: %s: want %s, got %s", key, want, got)
	}
	return nil
}

// Resolve answers a flag from the file unless its environment variable is
// set (kong applies environment values before resolvers, so without this
// check the file would override the environment).
func (c *configResolver) Resolve(_ *kong.Context, _ *kong.Path, f *kong.Flag) (any, error) {
	key := f.Tag.Get("config")
	if key == "" {
		return nil, nil
	}
	for _, env := range f.Tag.Envs {
		if _, set := os.LookupEnv(env); set {
			return nil, nil
		}
	}
	v, ok := c.values[key]
	if !ok {
		return nil, nil
	}
	if err := checkShape(key, f, v); err != nil {
		return nil, err
	}
	switch v := v.(type) {
	case json.Number:
		return v.String(), nil
	case []any, map[string]any:
		b, _ := json.Marshal(v)
		return string(b), nil
	}
	return v, nil
}

// flatten turns nested objects into dotted keys, dropping comment keys
// (those starting with "_"). Objects that are values
// (a flag of map type) are not expected in this configuration.
func flatten(prefix string, m map[string]any, out map[string]any) {
	for k, v := range m {
		if strings.HasPrefix(k, "_") {
			continue // a comment, as in deploy/agent.example.json
		}
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok && !isLeafObject(key) {
			flatten(key, sub, out)
			continue
		}
		out[key] = v
	}
}

// leafObjects are configuration keys whose value is itself an object.
var leafObjects = map[string]bool{"hub.keys": true}

func isLeafObject(key string) bool { return leafObjects[key] }

// engineMemory converts --runtime-max-memory-mib to engine.Config's
// MaxMemory: bytes, negative for "no guard".
func (r RuntimeFlags) engineMemory() int64 {
	if r.MaxMemoryMiB <= 0 {
		return -1
	}
	return r.MaxMemoryMiB << 20
}
