package playtest

import "testing"

// TestTablesComplete holds the test modules to the builtins' Table
// invariant, so `felhom-agent doc` documents every one of their members.
func TestTablesComplete(t *testing.T) {
	for _, tab := range Tables() {
		if err := tab.Check(); err != nil {
			t.Error(err)
		}
	}
}
