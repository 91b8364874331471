package guestapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzServer throws arbitrary methods, paths, bodies and Authorization
// headers at the server: it never panics, always answers the envelope,
// never echoes a token, and answers 2xx only to a known guest's token.
// Seeded from TestServer's table.
func FuzzServer(f *testing.F) {
	fk, toks := newFake(f)
	for _, s := range []struct{ method, path, auth, body string }{
		{"GET", "/storage", "Bearer " + toks[101], ""},
		{"POST", "/backup", "Bearer " + toks[101], `{"request_id":"q-1"}`},
		{"POST", "/backup", "Bearer " + toks[102], `{"params":{"storage":"x"}}`},
		{"POST", "/backup", "Bearer " + toks[101], `{"vmid":102}`},
		{"GET", "/backup/status?job_id=b-102", "Bearer " + toks[101], ""},
		{"POST", "/guest/reboot", "bearer " + toks[101], `{}{}`},
		{"GET", "/disks", "Bearer fgt_guess", ""},
		{"GET", "/v1/runs", "", ""},
		{"POST", "/backup", "Basic x", `{"request_id":"` + strings.Repeat("a", 200) + `"}`},
	} {
		f.Add(s.method, s.path, s.auth, s.body)
	}
	s := New(fk, Options{Rate: 1e9, Burst: 1 << 30, UnauthRate: 1e9, UnauthBurst: 1 << 30, BodyMax: 1024})
	f.Fuzz(func(t *testing.T, method, path, auth, body string) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n") || method == "" || strings.ContainsAny(method, " \r\n/") {
			return // not a request line net/http would deliver
		}
		req := httptest.NewRequest("GET", "/", strings.NewReader(body))
		req.Method = method
		if u, err := req.URL.Parse(path); err == nil {
			req.URL = u
		} else {
			return
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		var env struct {
			OK    bool            `json:"ok"`
			Data  json.RawMessage `json:"data"`
			Error string          `json:"error"`
		}
		if rec.Code == http.StatusMethodNotAllowed || rec.Code/100 == 3 {
			return // the mux's own answers: a method no route takes, an unclean path redirected
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
			t.Fatalf("%s %s: %d %q is not the envelope", method, path, rec.Code, rec.Body.String())
		}
		tok, known := strings.CutPrefix(auth, "Bearer ")
		valid := known && (strings.TrimSpace(tok) == toks[101] || strings.TrimSpace(tok) == toks[102])
		if rec.Code < 300 && !valid && !(len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ")) {
			t.Fatalf("%s %s answered %d without a guest's token", method, path, rec.Code)
		}
		for _, tk := range toks {
			if strings.Contains(rec.Body.String(), tk) {
				t.Fatal("an answer holds a token")
			}
		}
	})
}
