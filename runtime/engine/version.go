package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
)

// A version is the hex SHA-256 over a file's root-relative path, its
// source, and, in load order, the name and version of every module it
// loads: a Merkle hash, so a change anywhere below a playbook changes the
// playbook's version and nothing else does. The compiler version is not
// part of it (it keys the caches instead): an agent upgrade does not make
// a playbook a new version.
type versionHash struct{ h hash.Hash }

func newVersionHash(rel string, src []byte) versionHash {
	h := sha256.New()
	io.WriteString(h, "felhom-playbook-version-1\x00")
	io.WriteString(h, rel)
	h.Write([]byte{0})
	sum := sha256.Sum256(src)
	h.Write(sum[:])
	return versionHash{h}
}

func (v versionHash) add(loadName, depVersion string) {
	io.WriteString(v.h, loadName)
	v.h.Write([]byte{0})
	io.WriteString(v.h, depVersion)
	v.h.Write([]byte{0})
}

func (v versionHash) sum() string { return hex.EncodeToString(v.h.Sum(nil)) }

// ShortVersion is how a version is shown to people: its first 12 hex
// digits.
func ShortVersion(v string) string {
	if len(v) > 12 {
		return v[:12]
	}
	return v
}
