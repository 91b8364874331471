//go:build linux

package agent

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// The POSIX ACL that lets one host uid — an unprivileged container's
// root, 100000 by PVE's default idmap — read a guest's bootstrap file
// and list its directory, and nobody else beyond the agent: the file's
// owner may set it without root. The kernel's xattr form
// (include/uapi/linux/posix_acl_xattr.h): a version, then entries of
// tag, permissions and id, sorted by tag and id.
const (
	aclVersion   = 0x0002
	aclUserObj   = 0x01
	aclUser      = 0x02
	aclGroupObj  = 0x04
	aclMask      = 0x10
	aclOther     = 0x20
	aclUndefined = 0xffffffff
)

// aclXattr is the system.posix_acl_access value granting uid perm on a
// file whose owner has ownerPerm and nobody else anything.
func aclXattr(ownerPerm, perm uint16, uid uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, aclVersion)
	for _, e := range []struct {
		tag, perm uint16
		id        uint32
	}{{aclUserObj, ownerPerm, aclUndefined}, {aclUser, perm, uid}, {aclGroupObj, 0, aclUndefined}, {aclMask, perm, aclUndefined}, {aclOther, 0, aclUndefined}} {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.perm)
		b = binary.LittleEndian.AppendUint32(b, e.id)
	}
	return b
}

// grantRead lets uid read path (a file: r; a directory: r-x) besides its
// owner.
func grantRead(path string, uid int, dir bool) error {
	owner, perm := uint16(6), uint16(4)
	if dir {
		owner, perm = 7, 5
	}
	if err := unix.Setxattr(path, "system.posix_acl_access", aclXattr(owner, perm, uint32(uid)), 0); err != nil {
		return fmt.Errorf("grant uid %d read access to %s (a POSIX ACL): %w", uid, path, err)
	}
	return nil
}
