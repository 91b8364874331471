// Package layering holds no code: its test enforces the project's import
// layering (cmd → runtime → builtins → proxmox), listing each forbidden
// dependency with the reason it is forbidden.
package layering
