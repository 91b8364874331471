package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var (
	flagLong   = flag.Bool("e2e.long", os.Getenv("FELHOM_E2E_LONG") == "1", "run the long load variants (1,000 concurrent runs; 100 triggers/s for 60 s)")
	flagStrict = flag.Bool("e2e.strict", os.Getenv("FELHOM_E2E_STRICT") != "0", "make findings (deviations from issue #6 the suite reports) fail their test; -e2e.strict=false only logs them")
	flagRace   = flag.Bool("e2e.race", os.Getenv("FELHOM_E2E_RACE") != "0", "build the binary under test with -race (the default); -e2e.race=false builds it plain, for figures")
	flagBin    = flag.String("e2e.bin", os.Getenv("FELHOM_E2E_BIN"), "test this felhom-agent binary instead of building one")
)

// agentBin is the felhom-agent binary under test, built once by TestMain.
var agentBin string

// playbooksDir is the shipped playbooks directory (read only).
var playbooksDir string

// The hub's key pair for this run of the suite: the agent is given the
// public key, the tests sign with the private one, and the secret scan
// looks for both.
const hubKeyID = "hub-e2e"

var (
	hubPriv ed25519.PrivateKey
	hubPub  ed25519.PublicKey
)

// paramSecret is the value the suite gives secret-typed playbook
// parameters: run records must show it redacted, so the scan looks for it.
const paramSecret = "e2e-secret-param-5d1f0b7a"

// serveMissing is why `felhom-agent serve` cannot be tested ("" when it
// can): the daemon tests skip, saying so, against a binary without it.
var serveMissing string

func TestMain(m *testing.M) {
	flag.Parse()
	st, err := setup()
	if err != nil {
		st.cleanup()
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		os.Exit(2)
	}
	status := m.Run()
	// The scan covers everything every test captured, including what was
	// captured after a test's own scan (its cleanups).
	if hits := scanAll(os.Stdout); hits > 0 && status == 0 {
		status = 1
	}
	printSummary(os.Stdout)
	st.cleanup()
	os.Exit(status)
}

type setupState struct{ dir string }

func (s setupState) cleanup() {
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// setup builds the binary (unless -e2e.bin), finds the playbooks, makes
// the hub keys and probes for serve.
func setup() (setupState, error) {
	var st setupState
	pb, err := filepath.Abs(filepath.Join("..", "..", "..", "playbooks"))
	if err != nil {
		return st, err
	}
	if _, err := os.Stat(filepath.Join(pb, "selftest.star")); err != nil {
		return st, fmt.Errorf("shipped playbooks not found: %w", err)
	}
	playbooksDir = pb

	if *flagBin != "" {
		agentBin, err = filepath.Abs(*flagBin)
		if err != nil {
			return st, err
		}
	} else {
		st.dir, err = os.MkdirTemp("", "fae2e-bin")
		if err != nil {
			return st, err
		}
		agentBin = filepath.Join(st.dir, "felhom-agent")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		// Built with the race detector, so the daemon under concurrent
		// load is race-checked (a report fails the process, and the test).
		args := []string{"build", "-o", agentBin}
		if *flagRace {
			args = append(args, "-race")
		}
		cmd := exec.CommandContext(ctx, "go", append(args, "gitea.dooplex.hu/admin/felhom-agent/cmd/felhom-agent")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return st, fmt.Errorf("go build felhom-agent: %v\n%s", err, out)
		}
	}

	hubPub, hubPriv, err = ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return st, err
	}
	registerHubSecrets()
	addSecret("secret-typed parameter value", paramSecret)

	serveMissing = probeCommand("serve")
	return st, nil
}

// probeCommand returns "" when `felhom-agent CMD --help` succeeds, else why
// not (its first line of output).
func probeCommand(cmdName string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, agentBin, cmdName, "--help")
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = cleanEnv()
	if err := cmd.Run(); err != nil {
		first, _, _ := strings.Cut(strings.TrimSpace(out.String()), "\n")
		return fmt.Sprintf("felhom-agent %s --help: %v: %s", cmdName, err, first)
	}
	return ""
}

// hubPubB64 is the public key as the agent's configuration takes it.
func hubPubB64() string { return base64.StdEncoding.EncodeToString(hubPub) }
