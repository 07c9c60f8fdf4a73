#!/usr/bin/env bash
# The native quickstart: builds portcullis, Ory Kratos and the demo app,
# starts all three on loopback with the configuration in contrib/quickstart/
# and prints the URL to open. Ctrl-C stops all three, says so in one line
# and exits 0 (SIGTERM does the same and exits 143); nothing is left running.
#
#   Kratos     127.0.0.1:4433 (public), 127.0.0.1:4434 (admin)
#   demo app   127.0.0.1:4457
#   portcullis 127.0.0.1:4455 (proxy: the one URL to open), 127.0.0.1:4456
#              (API), 127.0.0.1:9000 (metrics)
#
# Only Go is needed; the first run builds Kratos, which takes a few minutes.
# Logs go to .build/demo/; portcullis's log is also followed here until the
# demo stops.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
dir=.build/demo
mkdir -p "$dir/bin"

say() { printf 'demo: %s\n' "$*"; }

# Every port the demo listens on must be free: a stale process would answer
# in place of the one this script starts.
ports=(4433 4434 4455 4456 4457 9000)
for p in "${ports[@]}"; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		say "port $p on 127.0.0.1 is in use; stop whatever listens there (a previous demo?) and try again" >&2
		exit 1
	fi
done

if ! command -v go >/dev/null 2>&1; then
	say "Go is needed (1.26 or later): https://go.dev/doc/install" >&2
	exit 1
fi
if [[ ! -x ${KRATOS_BIN:-$root/.build/bin/kratos} ]] && ! command -v "$(go env CC 2>/dev/null || echo gcc)" >/dev/null 2>&1; then
	say "building Ory Kratos needs a C compiler for its SQLite driver (Debian: apt-get install gcc)" >&2
	exit 1
fi

# The version /version reports, as `make build` stamps it.
version="$(git describe --tags --always 2>/dev/null || echo dev)"
say "building portcullis $version and the demo app"
CGO_ENABLED=0 go build -trimpath -ldflags "-X github.com/portcullis-proxy/portcullis/internal/app.version=$version" \
	-o "$dir/bin/portcullis" ./cmd/portcullis
CGO_ENABLED=0 go build -trimpath -o "$dir/bin/demo-app" ./contrib/demo-app
scripts/build-kratos.sh
kratos_bin="${KRATOS_BIN:-$root/.build/bin/kratos}"

pids=()
names=()
follower=""
stopping=0

# stop ends every process this script started: the log follower first (so
# the services' shutdown lines stay in their logs), then SIGTERM to the
# services, up to 10 s for a graceful exit (portcullis closes tunnels with
# 1001), then SIGKILL. It prints one line.
stop() {
	((stopping)) && return
	stopping=1
	trap - INT TERM
	if [[ -n $follower ]]; then
		kill -TERM "$follower" 2>/dev/null || true
		wait "$follower" 2>/dev/null || true
	fi
	if ((${#pids[@]})); then
		kill -TERM "${pids[@]}" 2>/dev/null || true
		for _ in $(seq 100); do
			alive=0
			for pid in "${pids[@]}"; do
				kill -0 "$pid" 2>/dev/null && alive=1
			done
			((alive)) || break
			sleep 0.1
		done
		kill -KILL "${pids[@]}" 2>/dev/null || true
		wait "${pids[@]}" 2>/dev/null || true
		say "stopped ${names[*]} (logs in $dir/)"
	fi
}
# Ctrl-C is the way to end the demo: a clean stop, exit status 0.
trap 'stop; exit 0' INT
trap 'stop; exit 143' TERM
trap 'stop' EXIT

# start NAME LOG COMMAND...: runs COMMAND in the background, its output in
# LOG, in a session of its own (setsid): a terminal's Ctrl-C reaches this
# script (and the log follower) only, and stop() ends the services in order,
# so none of them stops on its own first or prints its shutdown here.
start() {
	local name=$1 log=$2
	shift 2
	if command -v setsid >/dev/null 2>&1; then
		setsid "$@" >"$log" 2>&1 </dev/null &
	else
		"$@" >"$log" 2>&1 </dev/null &
	fi
	pids+=($!)
	names+=("$name")
}

# http_ok HOST PORT PATH: a GET answered 200 (plain bash, no curl needed).
http_ok() {
	local line
	exec 3<>"/dev/tcp/$1/$2" || return 1
	printf 'GET %s HTTP/1.0\r\nHost: %s:%s\r\n\r\n' "$3" "$1" "$2" >&3
	IFS= read -r -t 2 line <&3 || true
	exec 3<&- 3>&-
	[[ $line == "HTTP/1."[01]" 200"* ]]
}

# wait_ready NAME PID LOG TIMEOUT HOST PORT PATH...: waits until every
# PORT PATH pair answers 200, failing if the process exits or time runs out.
wait_ready() {
	local name=$1 pid=$2 log=$3 timeout=$4
	shift 4
	local deadline=$((SECONDS + timeout)) host=$1
	shift
	while :; do
		local ok=1 i
		for ((i = 1; i <= $#; i += 2)); do
			local port=${!i} j=$((i + 1))
			http_ok "$host" "$port" "${!j}" 2>/dev/null || ok=0
		done
		((ok)) && return 0
		if ! kill -0 "$pid" 2>/dev/null; then
			say "$name exited during startup; its log:" >&2
			[[ -f $log ]] && tail -n 40 "$log" >&2
			return 1
		fi
		if ((SECONDS >= deadline)); then
			say "$name was not ready after ${timeout}s; its log:" >&2
			[[ -f $log ]] && tail -n 40 "$log" >&2
			return 1
		fi
		sleep 0.2
	done
}

say "starting Kratos (in-memory database; logs in $dir/kratos.log)"
start kratos "$dir/kratos.log" env SQA_OPT_OUT=true "$kratos_bin" serve --dev --sqa-opt-out -c contrib/quickstart/kratos.yml
wait_ready Kratos "${pids[-1]}" "$dir/kratos.log" 90 127.0.0.1 4433 /health/ready 4434 /admin/health/ready

say "starting the demo app (logs in $dir/demo-app.log)"
start demo-app "$dir/demo-app.log" "$dir/bin/demo-app" -listen 127.0.0.1:4457 -kratos-public-url http://127.0.0.1:4433 \
	-portcullis-api-url http://127.0.0.1:4456 -rule demo-echo
wait_ready "the demo app" "${pids[-1]}" "$dir/demo-app.log" 30 127.0.0.1 4457 /health

say "starting portcullis (its log follows; also in $dir/portcullis.log)"
: >"$dir/portcullis.log"
tail -n +1 -F "$dir/portcullis.log" 2>/dev/null &
follower=$!
start portcullis "$dir/portcullis.log" "$dir/bin/portcullis" serve -c contrib/quickstart/portcullis.yml
wait_ready portcullis "${pids[-1]}" "$dir/portcullis.log" 30 127.0.0.1 4456 /health/ready

cat <<'EOF'

  ┌──────────────────────────────────────────────────────────────────────┐
  │  portcullis demo is running: open  http://127.0.0.1:4455/            │
  └──────────────────────────────────────────────────────────────────────┘

  You are sent to the login page: register an account, and the echo page
  opens a WebSocket through portcullis. The demo's rule ends every tunnel
  after 60 s with close code 1008 "max lifetime reached" (the page counts
  down to it); signing out in another tab ends it within 15 s with
  "session revoked".

  Use exactly 127.0.0.1 (not localhost): the cookies and rules are for it.
  Ctrl-C stops portcullis, Kratos and the demo app.

EOF

# Wait for Ctrl-C (the trap ends the wait at once) or for a process to die.
set +e
wait -n "${pids[@]}"
status=$?
set -e
# A terminal's Ctrl-C reaches every process of the group: a service may end
# on it (a graceful 0, or 130/143 for SIGINT/SIGTERM) before this script's
# own trap runs. That is the demo being stopped, not a failure.
if ((status == 0 || status == 130 || status == 143)); then
	stop
	exit 0
fi
for i in "${!pids[@]}"; do
	if ! kill -0 "${pids[$i]}" 2>/dev/null; then
		say "${names[$i]} exited unexpectedly (status $status); stopping the others" >&2
		tail -n 20 "$dir/${names[$i]}.log" >&2
		break
	fi
done
exit 1
