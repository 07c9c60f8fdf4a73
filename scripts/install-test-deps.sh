#!/usr/bin/env bash
# Installs what the tests need beyond Go modules, when it is missing. Safe to
# run again: it only installs what is absent.
set -euo pipefail

# Debian packages the tests use, each named by the command it provides:
#   caddy           forward_auth against /decisions (contrib/caddy/caddy_test.go)
#   chromium        the real-browser journey (e2e/browser_test.go)
#   debootstrap     the root file system of the stand-in base images
#                   (scripts/docker-images.sh, e2e/compose_stack_test.go)
#   docker-compose  validation of docker-compose.yml (e2e/compose_test.go)
#                   and the compose stack test
#   nginx           auth_request against /decisions (contrib/nginx/nginx_test.go)
#   redis-server    the revocation fleet channel (internal/revocation,
#                   e2e/replicas)
#   curl, nc        Oathkeeper's own e2e scripts run against portcullis
#                   (e2e/oathkeeper/scripts_test.go); nc is netcat-openbsd
# An entry COMMAND=PACKAGE names a command its package provides under
# another name. Arguments replace the list.
if (($# == 0)); then
	set -- caddy chromium debootstrap docker-compose nginx redis-server curl nc=netcat-openbsd
fi

need=()
for entry in "$@"; do
	cmd="${entry%%=*}"
	pkg="${entry#*=}"
	command -v "$cmd" >/dev/null 2>&1 || [[ -x /usr/sbin/$cmd ]] || need+=("$pkg")
done
if ((${#need[@]})); then
	echo "install-test-deps: installing ${need[*]}"
	if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
	# Wait for another apt run (a parallel install) instead of failing.
	$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${need[@]}" >/dev/null
fi
echo "install-test-deps: ready"
