//go:build race

package proxmox_test

// raceEnabled reports that the race detector is on; the tests that run
// a thousand simulated waits then run a hundred.
const raceEnabled = true
