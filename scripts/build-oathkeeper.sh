#!/usr/bin/env bash
# Builds Ory Oathkeeper v0.40.9 — the product bench/ compares portcullis
# with and e2e/oathkeeper's differential suite runs beside it — into
# .build/bin/oathkeeper from the separate tool module in tools/oathkeeper,
# and the helper programs of Oathkeeper's own e2e scripts (test/e2e's okapi
# and okclient, test/bearer-token's okapi) into .build/bin/oathkeeper-test/.
#
# The build is skipped when the binary exists and its stamp matches the
# current tools/oathkeeper module files and Go version; otherwise Oathkeeper
# is rebuilt (about eight minutes on two busy cores). Go, a C compiler and
# the Go module proxy are needed; the checksums come from Oathkeeper's own
# go.sum.
#
# Usage: scripts/build-oathkeeper.sh [--force]
# Env:   OATHKEEPER_BIN overrides the output path (default .build/bin/oathkeeper).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/lib/build-tool.sh"
name=build-oathkeeper
tooldir="$root/tools/oathkeeper"
out="${OATHKEEPER_BIN:-$root/.build/bin/oathkeeper}"
version=v0.40.9
what="Ory Oathkeeper $version and its e2e helpers"
takes="several minutes"
ldflags="-X github.com/ory/oathkeeper/x.Version=$version"
want="$(stamp_of "$ldflags")"
testdir="$(dirname "$out")/oathkeeper-test"
helpers=(okapi-e2e:test/e2e/okapi okclient:test/e2e/okclient okapi-bearer:test/bearer-token/okapi)

up_to_date() {
	[[ -x "$out" && -f "$out.stamp" && "$(cat "$out.stamp")" == "$want" &&
		-f "$testdir/.stamp" && "$(cat "$testdir/.stamp")" == "$want" ]] || return 1
	local p
	for p in "${helpers[@]}"; do
		[[ -x "$testdir/${p%%:*}" ]] || return 1
	done
}

build() {
	# Oathkeeper's dependencies link a cgo SQLite driver.
	CGO_ENABLED=1 GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath -ldflags "$ldflags" -o "$1" github.com/ory/oathkeeper
}

# The helper programs of Oathkeeper's e2e scripts, from the same module.
after_build() {
	mkdir -p "$testdir"
	local p
	for p in "${helpers[@]}"; do
		CGO_ENABLED=1 GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath -o "$testdir/${p%%:*}" "github.com/ory/oathkeeper/${p#*:}"
	done
	echo "$want" >"$testdir/.stamp"
}

build_tool "$@"
