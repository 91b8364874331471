#!/usr/bin/env bash
# The project's test command (README "Run the tests"): formatting, vet,
# staticcheck, and the whole test suite with the race detector (the
# end-to-end suite builds the binary under test with -race too). Fuzz seed
# corpora run as ordinary tests; long end-to-end variants are opt-in (see
# README).
set -euo pipefail
cd "$(dirname "$0")/.."
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*'))
if [ -n "$unformatted" ]; then
	echo "gofmt needed on:" >&2
	echo "$unformatted" >&2
	exit 1
fi
go vet ./...

# staticcheck, pinned, installed through the Go module proxy on first use.
staticcheck_version=v0.8.2 # staticcheck 2026.2.2
staticcheck="$(go env GOPATH)/bin/staticcheck"
if ! "$staticcheck" -version 2>/dev/null | grep -q "(${staticcheck_version#v})"; then
	go install "honnef.co/go/tools/cmd/staticcheck@$staticcheck_version"
fi
"$staticcheck" ./...

go test -race -count=1 -timeout 30m ./...
