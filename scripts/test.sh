#!/usr/bin/env bash
# The project's test command (README "Run the tests"): formatting, vet, and
# the whole test suite with the race detector. Fuzz seed corpora run as
# ordinary tests; long end-to-end variants are opt-in (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*'))
if [ -n "$unformatted" ]; then
	echo "gofmt needed on:" >&2
	echo "$unformatted" >&2
	exit 1
fi
go vet ./...
go test -race -count=1 -timeout 30m ./...
