package guestapi

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
)

// TokenPrefix starts every guest token, so that secret scanners and
// people recognise one.
const TokenPrefix = "fgt_"

// NewToken returns a new guest token (TokenPrefix and 32 random bytes,
// base64url) and its hash, the only form the agent keeps.
func NewToken() (string, [32]byte, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", [32]byte{}, fmt.Errorf("guest token: %w", err)
	}
	tok := TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return tok, sha256.Sum256([]byte(tok)), nil
}

// BootstrapSchema is the bootstrap file's schema tag, the Felhom
// controller's (its internal/bootstrap refuses any other).
const BootstrapSchema = "felhom.bootstrap/v2"

// Bootstrap is the bootstrap file the agent writes for a guest
// (bootstrap.json) and attaches to it read-only: what its controller
// needs to reach the guest API.
type Bootstrap struct {
	Schema string `json:"schema"`
	VMID   int    `json:"vmid"`
	// Customer is the hub's customer the guest serves, when the hub's
	// desired state names one for it.
	Customer *BootstrapCustomer `json:"customer,omitempty"`
	LocalAPI BootstrapAPI       `json:"local_api"`
	Hub      *BootstrapHub      `json:"hub,omitempty"`
}

// BootstrapCustomer is customer of felhom.bootstrap/v2.
type BootstrapCustomer struct {
	ID string `json:"id"`
}

// BootstrapAPI is the guest API's address, certificate pin and the
// guest's token.
type BootstrapAPI struct {
	// Endpoint is "host:port" of the guest API, the host's bridge address.
	Endpoint string `json:"endpoint"`
	// Fingerprint is the SHA-256 of the agent's leaf certificate,
	// "AB:CD:...", the pin the controller checks.
	Fingerprint string `json:"fingerprint"`
	// Token is the guest's bearer token.
	Token string `json:"token"`
}

// BootstrapHub is the hub the host reports to, when it has one.
type BootstrapHub struct {
	URL string `json:"url"`
	// RetrievalPassword is the secret the controller pulls its
	// configuration from the hub with (as Customer), when the hub's
	// desired state gives one for the guest.
	RetrievalPassword string `json:"retrieval_password,omitempty"`
}
