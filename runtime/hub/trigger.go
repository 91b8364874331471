package hub

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
)

// Trigger is the body of POST /v1/triggers.
type Trigger struct {
	// ID is the idempotency key: 1 to 128 printable ASCII characters, no
	// blanks. A second trigger with an ID already seen starts nothing.
	ID string
	// Name is the trigger, matching ^[a-z][a-z0-9_-]{0,63}$; the playbooks
	// whose declaration lists it answer it.
	Name string
	// Params are the raw JSON parameter values by name, not yet validated
	// against any playbook's declaration. Never nil.
	Params map[string]json.RawMessage
}

var (
	triggerNamePattern = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)
	paramNamePattern   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
)

// maxTriggerID is the longest idempotency key accepted.
const maxTriggerID = 128

// ParseTrigger decodes a trigger body strictly: one JSON object with the
// fields "id" (string), "trigger" (string) and optionally "params" (object
// or null); field names are case-sensitive, and unknown fields, duplicate
// fields or parameters, and data after the object are refused. Parameter
// names must be identifiers. Every error is a 400 *Rejection whose Field
// names the culprit ("id", "trigger", "params" or "params.NAME").
func ParseTrigger(body []byte) (Trigger, error) {
	fields, err := decodeObject(body, "", triggerFields)
	if err != nil {
		return Trigger{}, err
	}
	t := Trigger{Params: map[string]json.RawMessage{}}
	if t.ID, err = stringField(fields, "id"); err != nil {
		return Trigger{}, err
	}
	if n := len(t.ID); n == 0 || n > maxTriggerID {
		return Trigger{}, badField("id", fmt.Sprintf("id must be 1 to %d characters", maxTriggerID), fmt.Errorf("id has %d bytes", n))
	}
	for i := 0; i < len(t.ID); i++ {
		if c := t.ID[i]; c <= ' ' || c > '~' {
			return Trigger{}, badField("id", "id must be printable ASCII without blanks", fmt.Errorf("byte %d of id is %#x", i, c))
		}
	}
	if t.Name, err = stringField(fields, "trigger"); err != nil {
		return Trigger{}, err
	}
	if !triggerNamePattern.MatchString(t.Name) {
		return Trigger{}, badField("trigger", "trigger must match ^[a-z][a-z0-9_-]{0,63}$", nil)
	}
	raw, ok := fields["params"]
	if !ok || bytes.Equal(raw, []byte("null")) {
		return t, nil
	}
	if len(raw) == 0 || raw[0] != '{' {
		return Trigger{}, badField("params", "params must be an object", nil)
	}
	params, err := decodeObject(raw, "params.", nil)
	if err != nil {
		return Trigger{}, err
	}
	for name, v := range params {
		if !paramNamePattern.MatchString(name) {
			// The name is not echoed: it failed validation and may be anything.
			return Trigger{}, badField("params", "parameter names must be identifiers", nil)
		}
		t.Params[name] = v
	}
	return t, nil
}

// stringField returns the JSON string fields[name], which must be present.
func stringField(fields map[string]json.RawMessage, name string) (string, error) {
	raw, ok := fields[name]
	if !ok {
		return "", badField(name, name+" is required", nil)
	}
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", badField(name, name+" must be a string", nil)
	}
	return s, nil
}

// triggerFields are the members a trigger body may have.
var triggerFields = map[string]bool{"id": true, "trigger": true, "params": true}

// decodeObject reads data as exactly one JSON object and returns its
// members, refusing duplicate names (which encoding/json would silently
// resolve to the last), names not in allowed (unless allowed is nil), and
// anything after the object. Field names in errors are prefixed with
// prefix; a name that is not an identifier is never echoed.
func decodeObject(data []byte, prefix string, allowed map[string]bool) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, malformed(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		if prefix == "" {
			return nil, badField("", "body must be a JSON object", nil)
		}
		name := strings.TrimSuffix(prefix, ".")
		return nil, badField(name, name+" must be an object", nil)
	}
	out := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, malformed(err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, malformed(fmt.Errorf("object key is %T", tok))
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, malformed(err)
		}
		field := strings.TrimSuffix(prefix, ".")
		if paramNamePattern.MatchString(name) {
			field = prefix + name
		}
		if allowed != nil && !allowed[name] {
			if field == "" {
				return nil, badField("", "unknown field", nil)
			}
			return nil, badField(field, fmt.Sprintf("unknown field %q", field), nil)
		}
		if _, dup := out[name]; dup {
			return nil, badField(field, fmt.Sprintf("duplicate field %q", field), nil)
		}
		out[name] = v
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, malformed(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badField("", "unexpected data after the JSON object", err)
	}
	return out, nil
}

// malformed is the rejection of a body that is not valid JSON. The public
// message gives the byte offset, never the offending text.
func malformed(err error) *Rejection {
	var syn *json.SyntaxError
	public := "malformed JSON"
	if errors.As(err, &syn) {
		public = fmt.Sprintf("malformed JSON at byte %d", syn.Offset)
	} else if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		public = "malformed JSON: unexpected end of input"
	}
	return &Rejection{Status: http.StatusBadRequest, Public: public, Cause: err}
}

// badField is a 400 rejection naming field.
func badField(field, public string, cause error) *Rejection {
	return &Rejection{Status: http.StatusBadRequest, Public: public, Field: field, Cause: cause}
}
