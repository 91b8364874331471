package main

import (
	_ "github.com/adhocore/gronx"
	_ "github.com/alecthomas/kong"
	_ "github.com/bazelbuild/buildtools/build"
	_ "github.com/fsnotify/fsnotify"
	_ "github.com/hashicorp/golang-lru/v2"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/prometheus/client_golang/prometheus/testutil"
	_ "go.starlark.net/lib/json"
	_ "go.starlark.net/lib/time"
	_ "go.starlark.net/starlark"
	_ "go.starlark.net/starlarkstruct"
	_ "go.starlark.net/syntax"
	_ "modernc.org/sqlite"
)

func main() {}
