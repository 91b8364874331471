package guestapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fake is a Backend over two guests, 101 and 102, whose backup jobs are
// b-101 and b-102.
type fake struct {
	mu     sync.Mutex
	tokens map[[32]byte]int
	starts []JobRequest
	block  chan struct{} // when set, Storage waits on it
	// adoptable are hashes AdoptTokenHash adopts (a guest that migrated
	// here); adoptAsked counts its calls.
	adoptable  map[[32]byte]int
	adoptAsked int
}

func newFake(t testing.TB) (*fake, map[int]string) {
	f := &fake{tokens: map[[32]byte]int{}}
	toks := map[int]string{}
	for _, vmid := range []int{101, 102} {
		tok, h, err := NewToken()
		if err != nil {
			t.Fatal(err)
		}
		f.tokens[h] = vmid
		toks[vmid] = tok
	}
	return f, toks
}

func (f *fake) GuestByTokenHash(_ context.Context, h [32]byte) (int, bool, error) {
	v, ok := f.tokens[h]
	return v, ok, nil
}
func (f *fake) AdoptTokenHash(_ context.Context, h [32]byte) (int, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.adoptAsked++
	v, ok := f.adoptable[h]
	if ok {
		f.tokens[h] = v
	}
	return v, ok, nil
}
func (f *fake) Storage(ctx context.Context, vmid int) (Storage, error) {
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
		}
	}
	return Storage{VMID: vmid, Mounts: []Mount{{Key: "rootfs", Storage: "local-lvm", MountPoint: "/", Backup: true}}}, nil
}
func (f *fake) Status(_ context.Context, vmid int) (GuestStatus, error) {
	return GuestStatus{VMID: vmid, Status: "running"}, nil
}
func (f *fake) Health(context.Context) (Health, error) { return Health{}, nil }
func (f *fake) StartBackup(_ context.Context, vmid int, req JobRequest) (BackupStatus, error) {
	f.mu.Lock()
	f.starts = append(f.starts, req)
	f.mu.Unlock()
	if m, ok := req.Params["storage"]; ok {
		return BackupStatus{}, &BadRequestError{Field: "params.storage", Msg: fmt.Sprintf("is not settable by a guest (%T)", m)}
	}
	return BackupStatus{VMID: vmid, JobID: fmt.Sprintf("b-%d", vmid), Phase: PhaseQueued, RequestID: req.RequestID}, nil
}
func (f *fake) BackupStatus(_ context.Context, vmid int, id string) (BackupStatus, error) {
	if id != "" && id != fmt.Sprintf("b-%d", vmid) {
		if id == "b-101" || id == "b-102" {
			return BackupStatus{}, fmt.Errorf("job %s: %w", id, ErrForbidden)
		}
		return BackupStatus{}, fmt.Errorf("job %s: %w", id, ErrNotFound)
	}
	return BackupStatus{VMID: vmid, JobID: fmt.Sprintf("b-%d", vmid), Phase: PhaseDone}, nil
}
func (f *fake) BackupDue(_ context.Context, vmid int) (Due, error) {
	return Due{VMID: vmid, Due: true, Reason: "no backup yet"}, nil
}
func (f *fake) RestoreTest(_ context.Context, vmid int) (RestoreTest, error) {
	return RestoreTest{VMID: vmid}, nil
}
func (f *fake) Reboot(_ context.Context, vmid int, req JobRequest) (Job, error) {
	return Job{VMID: vmid, JobID: "r-1", Phase: PhaseQueued}, nil
}

type answer struct {
	status int
	env    struct {
		OK    bool            `json:"ok"`
		Data  json.RawMessage `json:"data"`
		Error string          `json:"error"`
	}
	header http.Header
}

func call(t *testing.T, h http.Handler, method, path, token, body string) answer {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var a answer
	a.status, a.header = rec.Code, rec.Header()
	if err := json.Unmarshal(rec.Body.Bytes(), &a.env); err != nil {
		t.Fatalf("%s %s: body %q is not the envelope: %v", method, path, rec.Body.String(), err)
	}
	return a
}

func TestServer(t *testing.T) {
	f, toks := newFake(t)
	var logs bytes.Buffer
	s := New(f, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), BodyMax: 256})
	tests := []struct {
		name, method, path, token, body string
		status                          int
		ok                              bool
		want                            string // in the data or the error
	}{
		{"no token", "GET", "/storage", "", "", 401, false, "a guest token is required"},
		{"not bearer", "GET", "/storage", "", "", 401, false, "Bearer"},
		{"unknown token", "GET", "/storage", "fgt_nobody", "", 401, false, "not a guest's token"},
		{"own storage", "GET", "/storage", toks[101], "", 200, true, `"vmid":101`},
		{"other guest's storage is not addressable", "GET", "/storage?vmid=102", toks[101], "", 200, true, `"vmid":101`},
		{"own status", "GET", "/status", toks[102], "", 200, true, `"vmid":102`},
		{"health", "GET", "/health", toks[102], "", 200, true, `"node"`},
		{"due", "GET", "/backup/due", toks[101], "", 200, true, `"due":true`},
		{"backup", "POST", "/backup", toks[101], `{"request_id":"q-1"}`, 200, true, `"request_id":"q-1"`},
		{"backup empty body", "POST", "/backup", toks[101], ``, 200, true, `"job_id":"b-101"`},
		{"backup bad request id", "POST", "/backup", toks[101], `{"request_id":"a b"}`, 400, false, "request_id: want 1 to 128"},
		{"backup unknown field", "POST", "/backup", toks[101], `{"vmid":102}`, 400, false, `unknown field "vmid"`},
		{"backup param refused", "POST", "/backup", toks[101], `{"params":{"storage":"x"}}`, 400, false, "params.storage"},
		{"backup body too big", "POST", "/backup", toks[101], `{"request_id":"` + strings.Repeat("a", 300) + `"}`, 413, false, "larger than 256 bytes"},
		{"backup GET", "GET", "/backup", toks[101], "", 404, false, "no such endpoint"},
		{"own status of job", "GET", "/backup/status?job_id=b-101", toks[101], "", 200, true, `"phase":"done"`},
		{"another guest's job", "GET", "/backup/status?job_id=b-102", toks[101], "", 403, false, "forbidden"},
		{"unknown job", "GET", "/backup/status?job_id=zzz", toks[101], "", 404, false, "not found"},
		{"restore test", "GET", "/restore-test/status", toks[101], "", 200, true, `"tested":false`},
		{"reboot", "POST", "/guest/reboot", toks[101], `{}`, 200, true, `"phase":"queued"`},
		{"disks", "GET", "/disks", toks[101], "", 501, false, "not built"},
		{"disk format", "POST", "/disks/format", toks[101], `{}`, 501, false, "not built"},
		{"no such endpoint", "GET", "/v1/runs", toks[101], "", 404, false, "no such endpoint"},
		{"no such endpoint without a token", "GET", "/v1/runs", "", "", 401, false, "token is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := call(t, s, tt.method, tt.path, tt.token, tt.body)
			text := string(a.env.Data) + a.env.Error
			if a.status != tt.status || a.env.OK != tt.ok || !strings.Contains(text, tt.want) {
				t.Errorf("%s %s = %d ok=%v %s; want %d ok=%v containing %q", tt.method, tt.path, a.status, a.env.OK, text, tt.status, tt.ok, tt.want)
			}
			if tt.status == 401 && a.header.Get("WWW-Authenticate") == "" {
				t.Error("a 401 without WWW-Authenticate")
			}
		})
	}
	if !strings.Contains(logs.String(), "another guest's things") || !strings.Contains(logs.String(), "vmid=101") {
		t.Errorf("the 403 was not logged with the guest:\n%s", logs.String())
	}
	for _, tok := range toks {
		if strings.Contains(logs.String(), tok) {
			t.Error("a token reached the log")
		}
	}
}

// A token the daemon does not hold is asked of AdoptTokenHash, and only
// within the limit of requests without a valid token: a flood of made-up
// tokens never makes the daemon scan more than that limit allows.
func TestServerAdoptsToken(t *testing.T) {
	f, _ := newFake(t)
	migrated, h, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	f.adoptable = map[[32]byte]int{h: 110}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	s := New(f, Options{UnauthRate: 1, UnauthBurst: 3, Now: func() time.Time { return now }})
	if a := call(t, s, "GET", "/status", migrated, ""); a.status != 200 || !strings.Contains(string(a.env.Data), `"vmid":110`) {
		t.Fatalf("a migrated guest's token = %d %s %s; want its own status", a.status, a.env.Data, a.env.Error)
	}
	if a := call(t, s, "GET", "/status", migrated, ""); a.status != 200 || f.adoptAsked != 1 {
		t.Errorf("the adopted token again = %d, adoption asked %d times; want 200, asked once", a.status, f.adoptAsked)
	}
	refused, limited := 0, 0
	for i := range 20 {
		switch a := call(t, s, "GET", "/status", fmt.Sprintf("fgt_madeup%d", i), ""); a.status {
		case 401:
			refused++
		case 429:
			limited++
		}
	}
	if refused != 2 || limited != 18 || f.adoptAsked != 3 {
		t.Errorf("20 made-up tokens: %d refused, %d limited, adoption asked %d times in all; want 2, 18, 3", refused, limited, f.adoptAsked)
	}
}

func TestServerFloodIsPerGuest(t *testing.T) {
	f, toks := newFake(t)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	s := New(f, Options{Rate: 1, Burst: 5, Now: func() time.Time { return now }})
	ok429 := 0
	for range 50 {
		a := call(t, s, "GET", "/backup/due", toks[101], "")
		if a.status == 429 {
			ok429++
			if a.header.Get("Retry-After") == "" {
				t.Fatal("a 429 without Retry-After")
			}
		}
	}
	if ok429 != 45 {
		t.Errorf("guest 101's flood: %d of 50 refused; want 45 (burst 5)", ok429)
	}
	// The other guest has its own bucket.
	for range 5 {
		if a := call(t, s, "GET", "/backup/due", toks[102], ""); a.status != 200 {
			t.Fatalf("guest 102 during 101's flood: %d", a.status)
		}
	}
	now = now.Add(2 * time.Second)
	if a := call(t, s, "GET", "/backup/due", toks[101], ""); a.status != 200 {
		t.Errorf("guest 101 after its bucket refilled: %d", a.status)
	}
}

func TestServerInFlightIsPerGuest(t *testing.T) {
	f, toks := newFake(t)
	f.block = make(chan struct{})
	s := New(f, Options{InFlight: 2, Burst: 100})
	ts := httptest.NewServer(s)
	defer ts.Close()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", ts.URL+"/storage", nil)
			req.Header.Set("Authorization", "Bearer "+toks[101])
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		})
	}
	// Wait until both are in flight.
	for {
		l := s.limiter(101)
		l.mu.Lock()
		n := l.inFlight
		l.mu.Unlock()
		if n == 2 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if a := call(t, s, "GET", "/backup/due", toks[101], ""); a.status != 429 {
		t.Errorf("a third request of guest 101 with 2 in flight: %d; want 429", a.status)
	}
	if a := call(t, s, "GET", "/backup/due", toks[102], ""); a.status != 200 {
		t.Errorf("guest 102 while 101 has 2 in flight: %d; want 200", a.status)
	}
	close(f.block)
	wg.Wait()
}

func TestUnauthenticatedFloodIsLimited(t *testing.T) {
	f, toks := newFake(t)
	s := New(f, Options{UnauthBurst: 3, UnauthRate: 0.001})
	codes := map[int]int{}
	for range 10 {
		codes[call(t, s, "GET", "/storage", "fgt_guess", "").status]++
	}
	if codes[401] != 3 || codes[429] != 7 {
		t.Errorf("10 guesses: %v; want 3×401 then 429", codes)
	}
	// A guest with a valid token is not held up by that address's guesses
	// (httptest requests all come from one address).
	if a := call(t, s, "GET", "/storage", toks[101], ""); a.status != 200 {
		t.Errorf("a valid guest after the guesses: %d", a.status)
	}
}

func TestNewToken(t *testing.T) {
	a, ha, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	b, _, _ := NewToken()
	if a == b || !strings.HasPrefix(a, TokenPrefix) || len(a) != len(TokenPrefix)+43 || ha != sha256.Sum256([]byte(a)) {
		t.Errorf("NewToken = %q, %q", a, b)
	}
}
