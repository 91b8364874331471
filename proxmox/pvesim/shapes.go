package pvesim

import "time"

// Shapes of answers that the real captures and the schema have and the
// rest of the simulator does not need for itself.

// diskCTime is the creation time content listings give a guest disk:
// pve-storage's list_images reports the logical volume's lv_time on
// LVM and LVM-thin (src/PVE/Storage/LvmThinPlugin.pm, LVMPlugin.pm
// lvm_list_volumes) and the file's ctime on directory storages
// (src/PVE/Storage/Plugin.pm file_size_info); ZFS volumes have none
// (ZFSPoolPlugin.pm list_images). The simulator does not record when a
// disk was made, so a disk's creation time is when it was first listed
// (second resolution), and stays so while it exists.
func (st *state) diskCTime(s *storage, volid string) time.Time {
	if s.typ == "zfspool" {
		return time.Time{}
	}
	if st.diskCTimes == nil {
		st.diskCTimes = map[string]time.Time{}
	}
	t, ok := st.diskCTimes[volid]
	if !ok {
		t = st.now.Truncate(time.Second)
		st.diskCTimes[volid] = t
	}
	return t
}
