package api

import (
	"encoding/json"
	"testing"
)

func TestLogLineString(t *testing.T) {
	tests := []struct {
		line LogLine
		want string
	}{
		{LogLine{Level: "INFO", Msg: "backed up"}, "INFO backed up"},
		{LogLine{Level: "WARN", Msg: "slow", Attrs: json.RawMessage(`{"vmid":101,"took":"2s","a":true}`)}, `WARN slow a=true took="2s" vmid=101`},
		{LogLine{Level: "ERROR", Msg: "odd", Attrs: json.RawMessage(`[1,2]`)}, "ERROR odd"}, // not an object: attributes dropped, line kept
		{LogLine{Level: "INFO", Msg: "nested", Attrs: json.RawMessage(`{"g":{"x":1}}`)}, `INFO nested g={"x":1}`},
	}
	for _, tt := range tests {
		if got := tt.line.String(); got != tt.want {
			t.Errorf("%+v.String() = %q; want %q", tt.line, got, tt.want)
		}
	}
}
