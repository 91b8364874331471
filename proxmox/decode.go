package proxmox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// The wire types below decode the shapes real hosts send, which are looser
// than the schema: numbers as strings (vmid before PVE 8.1, loadavg, SMART
// values), booleans as 0/1, null for absent values. The Client decodes
// into private wire structs built from them and converts to the public
// types, so the public types' JSON tags stay a plain description.

// num is a JSON number PVE may also send as a string; it keeps the
// number's text ("" for null, absent or an empty string).
type num string

func (n *num) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case string(b) == "null":
		*n = ""
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		s = strings.TrimSpace(s)
		if s == "" {
			*n = ""
			return nil
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("want a number, got %q", s)
		}
		*n = num(s)
		return nil
	}
	if _, err := strconv.ParseFloat(string(b), 64); err != nil {
		return fmt.Errorf("want a number, got %.40s", b)
	}
	*n = num(b)
	return nil
}

func (n num) toFloat() float64 {
	f, _ := strconv.ParseFloat(string(n), 64)
	return f
}

// int64 is the number truncated to an integer ("2.0" and 2.7 give 2).
func (n num) toInt64() int64 {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return i
	}
	f := n.toFloat()
	if f >= math.MaxInt64 || f <= math.MinInt64 {
		return 0
	}
	return int64(f)
}

func (n num) toInt() int { return int(n.toInt64()) }

// uint64 is the number as a size; negative values give 0.
func (n num) toUint64() uint64 {
	if u, err := strconv.ParseUint(string(n), 10, 64); err == nil {
		return u
	}
	f := n.toFloat()
	if f <= 0 || f >= math.MaxUint64 {
		return 0
	}
	return uint64(f)
}

// unix is the number as unix seconds; zero and absent give the zero Time.
func (n num) toTime() time.Time {
	s := n.toInt64()
	if s <= 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

// flag is a PVE boolean: true/false, 0/1, or those as strings.
type flag bool

func (f *flag) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case string(b) == "null":
		*f = false
		return nil
	case string(b) == "true" || string(b) == "false":
		*f = string(b) == "true"
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := parseBool(s)
		if err != nil {
			return err
		}
		*f = flag(v)
		return nil
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("want a boolean, got %.40s", b)
	}
	*f = v != 0
	return nil
}

// parseBool reads PVE's spellings of a boolean (JSONSchema's
// parse_boolean): 1/0, true/false, yes/no, on/off, any case; "" is false.
func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "true", "yes", "on":
		return true, nil
	case "", "0", "false", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("want a boolean, got %q", s)
}

// text is a JSON value read as a string: strings as they are, numbers as
// written, booleans as 1/0, null as "", arrays and objects as compact JSON.
type text string

func (t *text) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || string(b) == "null":
		*t = ""
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*t = text(s)
	case string(b) == "true":
		*t = "1"
	case string(b) == "false":
		*t = "0"
	case b[0] == '[' || b[0] == '{':
		var buf bytes.Buffer
		if err := json.Compact(&buf, b); err != nil {
			return err
		}
		*t = text(buf.String())
	default:
		*t = text(b)
	}
	return nil
}

// stringList is a list PVE sends either as "a,b,c" or as a JSON array.
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var items []text
		if err := json.Unmarshal(b, &items); err != nil {
			return err
		}
		*l = nil
		for _, it := range items {
			if s := strings.TrimSpace(string(it)); s != "" {
				*l = append(*l, s)
			}
		}
		return nil
	}
	if len(b) > 0 && b[0] == '{' {
		return fmt.Errorf("want a list, got %.40s", b)
	}
	var s text
	if err := s.UnmarshalJSON(b); err != nil {
		return err
	}
	*l = splitList(string(s), ",")
	return nil
}

// splitList splits s at sep, trimming items and dropping empty ones.
func splitList(s, sep string) []string {
	var out []string
	for _, it := range strings.Split(s, sep) {
		if it = strings.TrimSpace(it); it != "" {
			out = append(out, it)
		}
	}
	return out
}

// decodeData unmarshals an envelope's data into out. A null or absent data
// is an error: every read this Client makes answers with a value.
func decodeData(data json.RawMessage, out any) error {
	if len(bytes.TrimSpace(data)) == 0 || string(bytes.TrimSpace(data)) == "null" {
		return errors.New("response has no data")
	}
	return json.Unmarshal(data, out)
}

// parseProperty splits a PVE property string ("local-lvm:vm-101-disk-0,
// size=8G" or "name=eth0,bridge=vmbr0") into its key=value pairs. An
// element without '=' is the value of defaultKey (PVE's default_key, e.g.
// "volume"); without a defaultKey it is kept as a key with an empty value.
func parseProperty(s, defaultKey string) map[string]string {
	out := make(map[string]string)
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			if defaultKey != "" {
				out[defaultKey] = part
			} else {
				out[part] = ""
			}
			continue
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out
}

// parseInt reads an integer config value; PVE may write "2" or "2.0".
func parseInt(s string) (int, error) {
	s = strings.TrimSpace(s)
	if i, err := strconv.Atoi(s); err == nil {
		return i, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > math.MaxInt32 {
		return 0, fmt.Errorf("want an integer, got %q", s)
	}
	return int(f), nil
}
