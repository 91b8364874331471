package store

import (
	"encoding/json"
	"fmt"
	"unicode"
	"unicode/utf8"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// maxName bounds names, keys, versions and UPIDs: they are identifiers,
// and some come from the hub.
const maxName = 512

// checkName refuses a name that is empty (unless optional), too long, not
// UTF-8 or holding control characters: identifiers end up in logs and on
// terminals.
func checkName(field, s string, optional bool) error {
	switch {
	case s == "" && optional:
		return nil
	case s == "":
		return fmt.Errorf("%s is empty: %w", field, ErrInvalid)
	case len(s) > maxName:
		return fmt.Errorf("%s is %d bytes long, more than %d: %w", field, len(s), maxName, ErrInvalid)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s %q is not valid UTF-8: %w", field, s, ErrInvalid)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("%s %q holds a control character: %w", field, s, ErrInvalid)
		}
	}
	return nil
}

// checkJSON refuses text that is not one JSON value. The text itself is
// never quoted in the error: parameters may hold secrets a caller forgot
// to redact.
func checkJSON(field string, m json.RawMessage) error {
	if len(m) == 0 || json.Valid(m) {
		return nil
	}
	return fmt.Errorf("%s is not valid JSON: %w", field, ErrInvalid)
}

// checkTerminal refuses anything but a terminal status.
func checkTerminal(field string, s runstate.Status) error {
	if !s.Terminal() {
		return fmt.Errorf("%s %q is not a terminal status: %w", field, s, ErrInvalid)
	}
	return nil
}
