package pvesim

import "testing"

// TestDiskAccounting checks that adding and removing guests claims and
// frees exactly their disks' sizes, for disks named for their guest (found
// through the owner in the name) and for a disk named for another vmid
// (found by walking the guests).
func TestDiskAccounting(t *testing.T) {
	s := New()
	used := func() uint64 {
		for _, st := range s.Storages() {
			if st.Storage == "local-lvm" {
				return st.Used
			}
		}
		t.Fatal("no local-lvm")
		return 0
	}
	base := used()
	specs := []GuestSpec{
		{VMID: 500},
		{VMID: 501, RootFS: "local-lvm:vm-501-disk-0,size=2G", Config: map[string]string{"mp0": "local-lvm:vm-501-disk-1,mp=/srv,size=3G"}},
		{VMID: 502, RootFS: "local-lvm:vm-777-disk-0,size=5G"},
	}
	for _, sp := range specs {
		if err := s.AddGuest(sp); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := used()-base, uint64((8+2+3+5)*gib); got != want {
		t.Errorf("after AddGuest: used grew by %d; want %d", got, want)
	}
	for _, sp := range specs {
		if err := s.RemoveGuest(sp.VMID); err != nil {
			t.Fatal(err)
		}
	}
	if got := used(); got != base {
		t.Errorf("after RemoveGuest: used %d; want %d again", got, base)
	}
}
