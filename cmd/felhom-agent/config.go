package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
	Timeout            time.Duration `help:"Timeout of one API request." default:"30s" config:"proxmox.timeout" valid:"positive"`
	ReadRetryBudget    time.Duration `help:"How long a read keeps retrying while the API is unavailable (502/503, refused or dropped connections); 0 never retries." default:"30s" config:"proxmox.read_retry_budget" valid:"nonnegative"`
}

// PrivilegedFlags enable and fence the root-only host operations.
type PrivilegedFlags struct {
	Enabled     bool   `help:"Enable the host module (golden-image create, USB mount, SMART, sensors) through the fenced root commands." config:"privileged.enabled"`
	Sudo        bool   `help:"Run the fenced commands through sudo -n (see deploy/sudoers)." default:"true" negatable:"" config:"privileged.sudo"`
	MountPrefix string `help:"Directory below which USB disks may be mounted." default:"/mnt/felhom" placeholder:"DIR" config:"privileged.mount_prefix"`
}

// RuntimeFlags bound what runs may consume.
type RuntimeFlags struct {
	MaxConcurrent int    `help:"Runs executing at once; more wait for a slot." default:"${max_concurrent}" config:"runtime.max_concurrent" valid:"positive"`
	MaxSteps      uint64 `help:"Starlark steps one run may take before it is stopped." default:"${max_steps}" config:"runtime.max_steps" valid:"positive"`
	MaxMemoryMiB  int64  `name:"max-memory-mib" help:"Go heap (MiB) above which the runs executing Starlark are stopped; 0 disables the guard." default:"${max_memory_mib}" config:"runtime.max_memory_mib" valid:"nonnegative"`
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
// flags. The whole file is checked against every flag of the application
// (checkConfig), whichever command reads it: an unknown key, a value of
// the wrong JSON type or out of its key's range is an error naming the
// file and the dotted key. A flag whose environment variable is set keeps
// the environment's value: the file is the weakest source.
//
// A file that holds the API token is a key file, and is treated as ssh
// treats one: if others may read it, or anyone but its owner may write it,
// it is refused (checkConfigMode). A file others may write is refused
// whatever it holds: it says which host to trust and where playbooks are.
func jsonConfig(r io.Reader) (kong.Resolver, error) {
	name := "(stdin)"
	if f, ok := r.(interface{ Name() string }); ok {
		name = displayPath(f.Name())
	}
	fail := func(format string, a ...any) error {
		return &configError{file: name, problems: []string{fmt.Sprintf(format, a...)}}
	}
	src, err := io.ReadAll(r)
	if err != nil {
		return nil, fail("%v", err)
	}
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		if se, ok := errors.AsType[*json.SyntaxError](err); ok {
			line, col := lineCol(src, se.Offset-1) // Offset is just past the bad byte
			return nil, fail("line %d, column %d: %v", line, col, err)
		}
		if _, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
			return nil, fail("want a JSON object, got %s", jsonType(firstValue(src)))
		}
		return nil, fail("%v", err)
	}
	if f, ok := r.(*os.File); ok {
		px, _ := doc["proxmox"].(map[string]any)
		_, hasToken := px["token"]
		if err := checkConfigMode(f, hasToken); err != nil {
			return nil, err
		}
	}
	return &configResolver{file: name, doc: doc}, nil
}

// firstValue decodes the first JSON value of src, for saying what a file
// that is not an object holds.
func firstValue(src []byte) any {
	var v any
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.UseNumber()
	_ = dec.Decode(&v)
	return v
}

// displayPath is path as an operator would write it: relative to the
// working directory when it is below it.
func displayPath(path string) string {
	wd, err := os.Getwd()
	if err != nil {
		return path
	}
	if rel, err := filepath.Rel(wd, path); err == nil && filepath.IsLocal(rel) {
		return rel
	}
	return path
}

// configError is what is wrong with a configuration file: one problem a
// line, each "config FILE: KEY: what is wrong". It never holds a value of
// a string setting (a secret may be one).
type configError struct {
	file     string
	problems []string
}

func (e *configError) Error() string {
	var b strings.Builder
	for i, p := range e.problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "config %s: %s", e.file, p)
	}
	return b.String()
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

// configResolver answers flags from the file's values, once the whole
// file has passed checkConfig against the application's flags.
type configResolver struct {
	file string
	doc  map[string]any

	checked bool
	values  map[string]any // dotted key -> checked value
	err     error
}

// check runs checkConfig once; Resolve and Validate both need it, and
// whichever kong calls first (Resolve, unless every flag of the command
// line was given) does it.
func (c *configResolver) check(app *kong.Application) error {
	if !c.checked {
		c.checked = true
		c.values, c.err = checkConfig(c.file, c.doc, app)
	}
	return c.err
}

// Validate checks the whole file (for a command line whose every flag was
// given, so that Resolve was never asked).
func (c *configResolver) Validate(app *kong.Application) error { return c.check(app) }

// Resolve answers a flag from the file unless its environment variable is
// set (kong applies environment values before resolvers, so without this
// check the file would override the environment).
func (c *configResolver) Resolve(kctx *kong.Context, _ *kong.Path, f *kong.Flag) (any, error) {
	if err := c.check(kctx.Model); err != nil {
		return nil, err
	}
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
	switch v := v.(type) {
	case json.Number:
		return v.String(), nil
	case map[string]any: // hub.keys, read by parseHubKeys
		b, _ := json.Marshal(v)
		return string(b), nil
	}
	return v, nil // a list: kong decodes a []any into the flag's slice
}

// engineMemory converts --runtime-max-memory-mib to engine.Config's
// MaxMemory: bytes, negative for "no guard".
func (r RuntimeFlags) engineMemory() int64 {
	if r.MaxMemoryMiB <= 0 {
		return -1
	}
	return r.MaxMemoryMiB << 20
}
