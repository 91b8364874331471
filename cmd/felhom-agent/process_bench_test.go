package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkProcessRunSim measures what an operator waits for and what the
// machine pays for one `felhom-agent run --sim` of a trivial playbook
// (issue #3): the whole process — start, configuration, an in-process
// simulator with a fresh TLS certificate, loading and compiling the
// playbook, one API call, the summary, exit. ns/op (and wall-ms/run) is
// the wall time per run; peak-RSS-KiB is the largest resident set of any
// run and mean-RSS-KiB their mean (getrusage's ru_maxrss, KiB on Linux).
// The binary is built once, outside the timing. Numbers are reported,
// never asserted.
func BenchmarkProcessRunSim(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "felhom-agent")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	playbook := filepath.Join("testdata", "bench", "trivial.star")
	var peak, sum int64
	var wall time.Duration
	for b.Loop() {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(bin, "run", "--sim", playbook)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start := time.Now()
		err := cmd.Run()
		wall += time.Since(start)
		if err != nil || !strings.Contains(stdout.String(), "SUCCEEDED trivial") {
			b.Fatalf("felhom-agent run --sim: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
		}
		ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		if !ok {
			b.Fatalf("no rusage on this platform (%T)", cmd.ProcessState.SysUsage())
		}
		peak = max(peak, ru.Maxrss)
		sum += ru.Maxrss
	}
	b.ReportMetric(float64(wall)/float64(time.Millisecond)/float64(b.N), "wall-ms/run")
	b.ReportMetric(float64(peak), "peak-RSS-KiB")
	b.ReportMetric(float64(sum)/float64(b.N), "mean-RSS-KiB")
}
