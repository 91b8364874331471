package builtins

import (
	"fmt"

	"go.starlark.net/starlark"
)

// Errorf formats an error raised by builtin b, prefixed with its qualified
// name ("proxmox.vzdump: ...") so a playbook author sees which call failed
// even without the backtrace. Like [fmt.Errorf], a %w verb wraps its
// operand: typed errors (*proxmox.TaskError, *proxmox.APIError, context
// errors) pass through Starlark unflattened, and the runtime and catch()
// classify them with errors.As.
func Errorf(b *starlark.Builtin, format string, args ...any) error {
	return fmt.Errorf("%s: "+format, append([]any{b.Name()}, args...)...)
}
