//go:build !linux

package agent

func aclOf(string) (string, error) { return "", nil }
