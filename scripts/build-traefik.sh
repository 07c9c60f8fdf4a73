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
tooldir="$root/tools/traefik"
out="${TRAEFIK_BIN:-$root/.build/bin/traefik}"
stamp="$out.stamp"

version=v3.6.12
ldflags="-X github.com/traefik/traefik/v3/pkg/version.Version=$version"
want="$(cd "$tooldir" && { cat go.mod go.sum; go env GOVERSION GOOS GOARCH; echo "$ldflags"; } | sha256sum | cut -d' ' -f1)"

if [[ "${1:-}" != "--force" && -x "$out" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
	echo "build-traefik: $out is up to date"
	exit 0
fi

mkdir -p "$(dirname "$out")"

# One build at a time: parallel callers wait for the first.
exec 9>"$out.lock"
if command -v flock >/dev/null 2>&1; then
	if ! flock -n 9; then
		echo "build-traefik: another build is running; waiting for it"
		flock 9
	fi
	if [[ "${1:-}" != "--force" && -x "$out" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
		echo "build-traefik: $out was built meanwhile"
		exit 0
	fi
fi

echo "build-traefik: building Traefik $version (tools/traefik) into $out; this takes several minutes"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
start=$(date +%s)
(
	cd "$tooldir"
	CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" go build -ldflags "$ldflags" -o "$tmp" github.com/traefik/traefik/v3/cmd/traefik
)
mv -f "$tmp" "$out"
echo "$want" >"$stamp"
echo "build-traefik: built Traefik $version in $(($(date +%s) - start))s"
