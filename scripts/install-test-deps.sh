#!/usr/bin/env bash
# Installs what the tests need beyond Go modules, when it is missing. Safe to
# run again: it only installs what is absent.
set -euo pipefail

# Debian packages the tests use, each named by the command it provides:
#   caddy           forward_auth against /decisions (contrib/caddy/caddy_test.go)
#   chromium        the real-browser journey (e2e/browser_test.go)
#   docker-compose  validation of docker-compose.yml (e2e/compose_test.go)
#   nginx           auth_request against /decisions (contrib/nginx/nginx_test.go)
# Arguments replace the list.
if (($# == 0)); then
	set -- caddy chromium docker-compose nginx
fi

need=()
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
