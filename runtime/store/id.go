package store

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// newRunID is "r-<UTC time, seconds>-<8 random hex digits>". The time
// prefix makes IDs sort by creation and tell their age at a glance; the
// random part is checked for collisions on insert.
func newRunID(at time.Time) string {
	var b [4]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return "r-" + at.UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
}
