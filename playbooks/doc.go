// Package playbooks holds no Go code: it is the directory of the shipped
// Starlark playbooks (selftest, golden, provision, backup, restore,
// monitor), their shared lib/, and their *_test.star tests. Its Go test
// runs those tests on the simulator, checks every playbook, and keeps them
// formatted, so CI covers the flows as `felhom-agent test playbooks/` does.
package playbooks
