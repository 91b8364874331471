package store

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
)

// FuzzCreateRuns feeds CreateRuns what a hub trigger controls: the key and
// the parameters (and, for good measure, source and playbook name). Input
// is either refused with ErrInvalid, or stored and read back byte for
// byte; a repeated key returns the runs it created first.
func FuzzCreateRuns(f *testing.F) {
	for _, tt := range createCases {
		f.Add(string(tt.source), tt.key, tt.playbook, []byte(tt.params))
	}
	s := newStore(f)
	f.Fuzz(func(t *testing.T, source, key, playbook string, params []byte) {
		ctx := context.Background()
		runs, created, err := s.CreateRuns(ctx, Trigger{Source: Source(source), Key: key},
			[]NewRun{{Playbook: playbook, Params: params}})
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("CreateRuns(%q, %q, %q, %q) = %v; want success or ErrInvalid", source, key, playbook, params, err)
			}
			return
		}
		if len(runs) == 0 {
			t.Fatalf("CreateRuns(%q, %q) returned no runs (created %v)", source, key, created)
		}
		if !created {
			again, err := s.RunsByKey(ctx, Source(source), key)
			if err != nil || !slices.Equal(ids(again), ids(runs)) {
				t.Fatalf("replay of %q returned %v; RunsByKey = %v, %v", key, ids(runs), ids(again), err)
			}
			return
		}
		got := get(t, s, runs[0].ID)
		if got.Source != Source(source) || got.Key != key || got.Playbook != playbook || !bytes.Equal(got.Params, params) {
			t.Fatalf("stored (%q, %q, %q, %q); read back (%q, %q, %q, %q)",
				source, key, playbook, params, got.Source, got.Key, got.Playbook, got.Params)
		}
	})
}
