#!/usr/bin/env bash
# Builds Ory Kratos (the identity provider the integration tests run against)
# into .build/bin/kratos from the separate tool module in tools/kratos.
#
# The build is skipped when the binary exists and its stamp matches the
# current tools/kratos module files and Go version; otherwise Kratos is
# rebuilt (a few minutes on two cores). Go, a C compiler (SQLite is cgo) and the Go module proxy are
# needed: Kratos's own go.sum supplies the checksums the checksum database
# lacks.
#
# Usage: scripts/build-kratos.sh [--force]
# Env:   KRATOS_BIN overrides the output path (default .build/bin/kratos).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tooldir="$root/tools/kratos"
out="${KRATOS_BIN:-$root/.build/bin/kratos}"
stamp="$out.stamp"

version=v1.3.1
ldflags="-X github.com/ory/kratos/driver/config.Version=$version"
want="$(cd "$tooldir" && { cat go.mod go.sum; go env GOVERSION GOOS GOARCH; echo "tags=sqlite $ldflags"; } | sha256sum | cut -d' ' -f1)"

if [[ "${1:-}" != "--force" && -x "$out" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
	echo "build-kratos: $out is up to date"
	exit 0
fi

mkdir -p "$(dirname "$out")"

# One build at a time: parallel callers (make, CI, a demo) wait for the first.
exec 9>"$out.lock"
if command -v flock >/dev/null 2>&1; then
	if ! flock -n 9; then
		echo "build-kratos: another build is running; waiting for it"
		flock 9
	fi
	if [[ "${1:-}" != "--force" && -x "$out" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
		echo "build-kratos: $out was built meanwhile"
		exit 0
	fi
fi

echo "build-kratos: building Ory Kratos $version (tools/kratos, -tags sqlite) into $out; this takes a few minutes"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
start=$(date +%s)
(
	cd "$tooldir"
	# CGO is required by the sqlite driver that backs `dsn: memory`. The
	# checksums come from go.sum (read-only): nothing is asked of the checksum
	# database, which lacks one of the versions Kratos replaces in.
	CGO_ENABLED=1 GOFLAGS="-mod=readonly -buildvcs=false" go build -tags sqlite -trimpath -ldflags "$ldflags" -o "$tmp" github.com/ory/kratos
)
mv -f "$tmp" "$out"
echo "$want" >"$stamp"
echo "build-kratos: built Ory Kratos $version in $(($(date +%s) - start))s"
