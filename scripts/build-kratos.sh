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
source "$root/scripts/lib/build-tool.sh"
name=build-kratos
tooldir="$root/tools/kratos"
out="${KRATOS_BIN:-$root/.build/bin/kratos}"
version=v1.3.1
what="Ory Kratos $version, -tags sqlite"
takes="a few minutes"
ldflags="-X github.com/ory/kratos/driver/config.Version=$version"
want="$(stamp_of "tags=sqlite $ldflags")"

build() {
	# CGO is required by the sqlite driver that backs `dsn: memory`. The
	# checksums come from go.sum (read-only): nothing is asked of the checksum
	# database, which lacks one of the versions Kratos replaces in.
	CGO_ENABLED=1 GOFLAGS="-mod=readonly -buildvcs=false" go build -tags sqlite -trimpath -ldflags "$ldflags" -o "$1" github.com/ory/kratos
}

build_tool "$@"
