package engine

import (
	"testing"
)

// TestDeclarationTablesComplete holds the declaration builtins to the
// Table invariant: every function has a signature naming it and a doc,
// and the module has no member without one.
func TestDeclarationTablesComplete(t *testing.T) {
	for _, tab := range DeclarationTables() {
		if err := tab.Check(); err != nil {
			t.Error(err)
		}
	}
	// Every param kind has its constructor.
	for _, kind := range []ParamKind{KindString, KindInt, KindBool, KindDuration, KindEnum, KindSecret, KindList} {
		if _, ok := ParamTable.Module().Members[string(kind)]; !ok {
			t.Errorf("param.%s is missing", kind)
		}
	}
}
