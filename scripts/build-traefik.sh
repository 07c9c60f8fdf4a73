#!/usr/bin/env bash
# Builds Traefik v3 (the proxy the contrib/traefik integration test runs in
# front of the decision API) into .build/bin/traefik from the separate tool
# module in tools/traefik.
#
# The build is skipped when the binary exists and its stamp matches the
# current tools/traefik module files and Go version; otherwise Traefik is
# rebuilt: about half an hour cold on two busy cores, downloads included
# (contrib/traefik/README.md), which is why `make test` does not build it and
# the Traefik test runs only where it is built (`make traefik`). Go and the
# Go module proxy are needed; no C compiler (CGO_ENABLED=0). The checksums
# come from Traefik's own go.sum.
#
# Usage: scripts/build-traefik.sh [--force]
# Env:   TRAEFIK_BIN overrides the output path (default .build/bin/traefik).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/lib/build-tool.sh"
name=build-traefik
tooldir="$root/tools/traefik"
out="${TRAEFIK_BIN:-$root/.build/bin/traefik}"
version=v3.6.12
what="Traefik $version"
takes="several minutes"
ldflags="-X github.com/traefik/traefik/v3/pkg/version.Version=$version"
want="$(stamp_of "$ldflags")"

build() {
	CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" go build -ldflags "$ldflags" -o "$1" github.com/traefik/traefik/v3/cmd/traefik
}

build_tool "$@"
