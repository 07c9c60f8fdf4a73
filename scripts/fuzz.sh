#!/usr/bin/env bash
# Runs every fuzz target (func FuzzXxx in a *_fuzz_test.go file) in turn for
# FUZZTIME each (first argument, default 2m). A crasher is written to the
# target's testdata/fuzz directory, where every `go test` replays it: fix the
# bug and commit it as a regression test. FUZZFLAGS passes extra flags (e.g.
# -parallel 2).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
fuzztime="${1:-2m}"
status=0
while IFS=: read -r file line decl; do
	name="$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*).*/\1/' <<<"$decl")"
	pkg="$(dirname "$file")"
	echo "== $name ($pkg, $fuzztime)"
	if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime 10s ${FUZZFLAGS:-} "$pkg"; then
		status=1
		echo "!! $name failed: see the crasher under $pkg/testdata/fuzz/$name"
	fi
done < <(grep -rn --include='*_fuzz_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(' . | sort)
exit $status
