//go:build linux

package agent

import (
	"encoding/binary"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// aclOf renders path's access ACL as "tag:id:perm ..." ("" for none).
func aclOf(path string) (string, error) {
	buf := make([]byte, 256)
	n, err := unix.Getxattr(path, "system.posix_acl_access", buf)
	if err == unix.ENODATA {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	b := buf[4:n]
	var out []string
	for ; len(b) >= 8; b = b[8:] {
		tag, perm, id := binary.LittleEndian.Uint16(b), binary.LittleEndian.Uint16(b[2:]), binary.LittleEndian.Uint32(b[4:])
		ids := ""
		if id != aclUndefined {
			ids = fmt.Sprint(id)
		}
		out = append(out, fmt.Sprintf("%#x:%s:%d", tag, ids, perm))
	}
	return strings.Join(out, " "), nil
}
