#!/usr/bin/env bash
# Installs what the tests need beyond Go modules, when it is missing. Safe to
# run again: it only installs what is absent.
set -euo pipefail

need=()
# (Debian packages the tests use are added here: see the README's Tests.)
for pkg in "$@"; do
	command -v "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
	echo "install-test-deps: installing ${need[*]}"
	if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
echo "install-test-deps: ready"
