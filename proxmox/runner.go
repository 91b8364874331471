package proxmox

import (
	"context"
	"fmt"
	"strings"
)

// Runner runs one command for [Privileged]: argv[0] is the program and the
// rest its arguments, passed as they are — never through a shell.
//
// Contract, for every implementation (the exec runner, the simulator's
// recording runner, test fakes):
//   - Run returns the command's standard output when it exits 0.
//   - A non-zero exit returns the output so far and an *[ExitError] carrying
//     the exit code and standard error; some tools (smartctl) encode status
//     bits in the code, so callers may still use the output.
//   - Run honours ctx: cancellation or a deadline stops a running command
//     and returns ctx.Err() wrapped.
//   - Run never blocks on standard input.
//
// The argv that [Privileged] passes, which simulators must answer with the
// real tools' output shapes:
//
//	pct create VMID TEMPLATE_VOLID --key value ...   (keyctl=1 golden image)
//	mount -o nodev,nosuid,noexec UUID=<uuid> TARGET
//	smartctl --json -a DEVICE                         (smartctl 7.x JSON)
//	sensors -j                                        (lm-sensors JSON)
type Runner interface {
	Run(ctx context.Context, argv []string) ([]byte, error)
}

// ExitError is a command that ran and exited non-zero.
type ExitError struct {
	Argv   []string
	Code   int
	Stderr string
}

func (e *ExitError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" {
		msg = "no error output"
	}
	return fmt.Sprintf("%s exited %d: %s", e.Argv[0], e.Code, msg)
}
