//go:build !linux

package agent

import "errors"

// grantRead needs Linux's POSIX ACLs; Proxmox VE is Linux.
func grantRead(path string, uid int, dir bool) error {
	return errors.New("granting a container read access needs Linux POSIX ACLs")
}
