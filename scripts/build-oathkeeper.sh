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
tooldir="$root/tools/oathkeeper"
out="${OATHKEEPER_BIN:-$root/.build/bin/oathkeeper}"
stamp="$out.stamp"

version=v0.40.9
ldflags="-X github.com/ory/oathkeeper/x.Version=$version"
want="$(cd "$tooldir" && { cat go.mod go.sum; go env GOVERSION GOOS GOARCH; echo "$ldflags"; } | sha256sum | cut -d' ' -f1)"

testdir="$(dirname "$out")/oathkeeper-test"
up_to_date() {
	[[ -x "$out" && -f "$stamp" && "$(cat "$stamp")" == "$want" &&
		-x "$testdir/okapi-e2e" && -x "$testdir/okclient" && -x "$testdir/okapi-bearer" &&
		-f "$testdir/.stamp" && "$(cat "$testdir/.stamp")" == "$want" ]]
}

if [[ "${1:-}" != "--force" ]] && up_to_date; then
	echo "build-oathkeeper: $out is up to date"
	exit 0
fi

mkdir -p "$(dirname "$out")"

# One build at a time: parallel callers wait for the first.
exec 9>"$out.lock"
if command -v flock >/dev/null 2>&1; then
	if ! flock -n 9; then
		echo "build-oathkeeper: another build is running; waiting for it"
		flock 9
	fi
	if [[ "${1:-}" != "--force" ]] && up_to_date; then
		echo "build-oathkeeper: $out was built meanwhile"
		exit 0
	fi
fi

echo "build-oathkeeper: building Ory Oathkeeper $version (tools/oathkeeper) into $out; this takes several minutes"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
start=$(date +%s)
(
	cd "$tooldir"
	# Oathkeeper's dependencies link a cgo SQLite driver.
	CGO_ENABLED=1 GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath -ldflags "$ldflags" -o "$tmp" github.com/ory/oathkeeper
)
mv -f "$tmp" "$out"
echo "$want" >"$stamp"
# The helper programs of Oathkeeper's e2e scripts, from the same module.
mkdir -p "$testdir"
(
	cd "$tooldir"
	for p in okapi-e2e:test/e2e/okapi okclient:test/e2e/okclient okapi-bearer:test/bearer-token/okapi; do
		CGO_ENABLED=1 GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath -o "$testdir/${p%%:*}" "github.com/ory/oathkeeper/${p#*:}"
	done
)
echo "$want" >"$testdir/.stamp"
echo "build-oathkeeper: built Ory Oathkeeper $version and its e2e helpers in $(($(date +%s) - start))s"
