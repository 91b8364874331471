package engine

import (
	"go.starlark.net/starlark"
)

// LoadScript loads a file that is not a playbook — a playbook test
// (*_test.star) — and returns its frozen globals. Its load() statements
// resolve and are cached exactly as a playbook's are; it must not call
// playbook(). The error is a *[LoadError] pointing at the source.
func (l *Loader) LoadScript(path string) (starlark.StringDict, error) {
	rel, err := l.Rel(path)
	if err != nil {
		return nil, &LoadError{Diagnostics: []Diagnostic{{File: path, Msg: err.Error()}}}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s, err := l.newSession()
	if err != nil {
		return nil, &LoadError{Diagnostics: []Diagnostic{{File: l.dir, Msg: err.Error()}}}
	}
	defer s.root.Close()
	n, err := s.resolve(rel)
	if err != nil {
		return nil, s.rootError(rel, err)
	}
	m, err := s.exec(n, false)
	if err != nil {
		return nil, err
	}
	return m.globals, nil
}
