package hub

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

var (
	pubB64      = base64.StdEncoding.EncodeToString(testPub)
	pubRaw      = base64.RawStdEncoding.EncodeToString(testPub)
	otherPubB64 = base64.StdEncoding.EncodeToString(otherPriv.Public().(ed25519.PublicKey))
	privB64     = base64.StdEncoding.EncodeToString(testPriv)
)

// parseKeysCases is shared by TestParseKeys and FuzzParseKeys' seeds.
var parseKeysCases = []struct {
	in      string
	ids     []string // nil: want an error
	wantErr string   // substring of the error
}{
	{in: "", ids: []string{}},
	{in: "  ", ids: []string{}},
	{in: "hub-1=" + pubB64, ids: []string{"hub-1"}},
	{in: "hub-1=" + pubRaw, ids: []string{"hub-1"}},
	{in: " hub-1 = " + pubB64 + " , hub-2=" + otherPubB64 + " ", ids: []string{"hub-1", "hub-2"}},
	{in: "a.b:c_d-1=" + pubB64, ids: []string{"a.b:c_d-1"}},

	{in: "hub-1", wantErr: "entry 1: want ID=BASE64"},
	{in: pubB64, wantErr: "entry 1"}, // the key without an id: the "=" of its padding splits it
	{in: pubRaw, wantErr: "entry 1: want ID=BASE64"},
	{in: "hub-1=" + pubB64 + ",", wantErr: "entry 2 is empty"},
	{in: "=" + pubB64, wantErr: "invalid key id"},
	{in: "hub 1=" + pubB64, wantErr: "invalid key id"},
	{in: strings.Repeat("k", 33) + "=" + pubB64, wantErr: "invalid key id (33 characters)"},
	{in: "hub-1=", wantErr: `key id "hub-1": public key is empty`},
	{in: "hub-1=not*base64", wantErr: `key id "hub-1": public key is not standard base64`},
	{in: "hub-1=" + privB64, wantErr: `key id "hub-1": public key is 64 bytes, want a 32-byte`},
	{in: "hub-1=AAAA", wantErr: "is 3 bytes"},
	{in: "hub-1=" + pubB64 + ",hub-1=" + otherPubB64, wantErr: `entry 2: key id "hub-1": given twice`},
}

func TestParseKeys(t *testing.T) {
	for _, c := range parseKeysCases {
		got, err := ParseKeys(c.in)
		if c.ids == nil {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("ParseKeys(%q) error = %v; want one containing %q", c.in, err, c.wantErr)
			}
			if err != nil {
				assertNoSecrets(t, "ParseKeys error", err.Error())
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseKeys(%q) = %v", c.in, err)
			continue
		}
		if ids := got.IDs(); fmt.Sprint(ids) != fmt.Sprint(c.ids) {
			t.Errorf("ParseKeys(%q) ids = %v; want %v", c.in, ids, c.ids)
		}
		if k, ok := got["hub-1"]; ok && !bytes.Equal(k, testPub) {
			t.Errorf("ParseKeys(%q)[hub-1] is not the test key", c.in)
		}
	}
}

func TestKeysFromMap(t *testing.T) {
	got, err := KeysFromMap(map[string]string{"hub-1": pubB64, "hub-2": " " + otherPubB64 + "\n"})
	if err != nil || fmt.Sprint(got.IDs()) != "[hub-1 hub-2]" {
		t.Fatalf("KeysFromMap(good) = %v, %v", got, err)
	}
	for in, want := range map[string]map[string]string{
		`key id "b": public key is 16 bytes`: {"a": pubB64, "b": base64.StdEncoding.EncodeToString(make([]byte, 16))},
		`invalid key id (0 characters)`:      {"": pubB64},
		`invalid key id (44 characters)`:     {pubB64: pubB64},
	} {
		_, err := KeysFromMap(want)
		if err == nil || !strings.Contains(err.Error(), in) {
			t.Errorf("KeysFromMap error = %v; want one containing %q", err, in)
		}
		if err != nil {
			assertNoSecrets(t, "KeysFromMap error", err.Error())
		}
	}
}

func TestKeysUnmarshalText(t *testing.T) {
	for _, in := range []string{
		"hub-1=" + pubB64,
		`{"hub-1": "` + pubB64 + `"}`,
	} {
		var k Keys
		if err := k.UnmarshalText([]byte(in)); err != nil || !bytes.Equal(k["hub-1"], testPub) {
			t.Errorf("UnmarshalText(%q) = %v, %v", in, k, err)
		}
	}
	var k Keys
	err := k.UnmarshalText([]byte(`{"hub-1": ` + pubB64 + `}`))
	if err == nil {
		t.Fatal("UnmarshalText(bad JSON) succeeded")
	}
	assertNoSecrets(t, "UnmarshalText error", err.Error())
}

// TestKeysRedacted checks that no printable form of Keys shows a key.
func TestKeysRedacted(t *testing.T) {
	k := Keys{"hub-1": testPub}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "keys", k)
	js, err := json.Marshal(struct{ K Keys }{k})
	if err != nil {
		t.Fatal(err)
	}
	text, _ := k.MarshalText()
	forms := map[string]string{
		"%v": fmt.Sprintf("%v", k), "%+v": fmt.Sprintf("%+v", k), "%#v": fmt.Sprintf("%#v", k),
		"%s": fmt.Sprintf("%s", k), "%x": fmt.Sprintf("%x", k), "%d": fmt.Sprintf("%d", k),
		"%q": fmt.Sprintf("%q", k), "in a struct": fmt.Sprintf("%+v", struct{ K Keys }{k}),
		"slog": logged.String(), "json": string(js), "text": string(text), "GoString": k.GoString(),
	}
	for form, s := range forms {
		assertNoSecrets(t, form, s)
		if !strings.Contains(s, "hub-1") {
			t.Errorf("%s = %q; want the key id shown", form, s)
		}
	}
}

func FuzzParseKeys(f *testing.F) {
	for _, c := range parseKeysCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		k, err := ParseKeys(in)
		if err != nil {
			if k != nil {
				t.Errorf("ParseKeys(%q) returned keys with error %v", in, err)
			}
			return
		}
		for id, pub := range k {
			if !keyIDPattern.MatchString(id) || len(pub) != ed25519.PublicKeySize {
				t.Errorf("ParseKeys(%q) accepted id %q with a %d-byte key", in, id, len(pub))
			}
		}
	})
}
