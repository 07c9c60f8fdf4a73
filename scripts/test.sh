#!/usr/bin/env bash
# Runs every test with the race detector and prints what passed, what
# failed and a closing count. The full verbose log is kept in .build/test.log.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
mkdir -p .build
log=.build/test.log

go test -race -count=1 -v -timeout 40m ./... >"$log" 2>&1 &
pid=$!
# Show progress as it happens: top-level results, failures with their
# messages, package lines.
tail -n +1 -f "$log" --pid=$pid | grep --line-buffered -E '^(--- (PASS|FAIL|SKIP)|FAIL|ok |panic:|\s+--- FAIL|\s+[A-Za-z0-9_]+_test\.go:[0-9]+:|WARNING: DATA RACE)'
wait $pid
status=$?

passed=$(grep -cE '^\s*--- PASS' "$log")
failed=$(grep -cE '^\s*--- FAIL' "$log")
skipped=$(grep -cE '^\s*--- SKIP' "$log")
if ((status != 0)) && ((failed == 0)); then
	# A build failure or panic fails no named test; show it.
	grep -E -B2 -A20 '^(FAIL|panic:|#)' "$log" | head -80
	failed=1
fi
echo
# The compose stack needs a Docker Engine; say so when it did not run.
if grep -qE '^--- SKIP: TestComposeStack' "$log"; then
	grep -m1 -oE 'compose stack: skipped.*' "$log" || echo "compose stack: skipped"
fi
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit $status
