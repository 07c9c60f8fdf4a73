# Sourced by scripts/build-kratos.sh, scripts/build-oathkeeper.sh and
# scripts/build-traefik.sh: what building a tool from its separate module in
# tools/<name> has in common. The caller sets
#   name     the script's name, for its messages (build-kratos)
#   what     what it builds, for its messages (Ory Kratos v1.3.1)
#   tooldir  the tool module's directory
#   out      the binary's path
#   want     the stamp of the inputs, from stamp_of
#   takes    how long a build takes, for the message before it
# and defines build TMP (builds the binary at TMP, run in $tooldir); it may
# define up_to_date (default: the binary exists and its stamp is $want) and
# after_build (run in $tooldir once the binary is in place). Then it calls
# build_tool "$@".

# stamp_of EXTRA prints the stamp of the tool module's go.mod and go.sum,
# the Go version and platform, and EXTRA (tags, linker flags): a build is
# skipped while the stamp of the binary is the stamp of its inputs.
stamp_of() {
	(cd "$tooldir" && { cat go.mod go.sum; go env GOVERSION GOOS GOARCH; echo "$1"; } | sha256sum | cut -d' ' -f1)
}

up_to_date() {
	[[ -x "$out" && -f "$out.stamp" && "$(cat "$out.stamp")" == "$want" ]]
}

after_build() { :; }

# build_tool [--force] builds $out unless it is up to date (always with
# --force), one build at a time: parallel callers (make, CI, a demo) wait
# for the first and use what it built.
build_tool() {
	local force="${1:-}"
	if [[ "$force" != "--force" ]] && up_to_date; then
		echo "$name: $out is up to date"
		return 0
	fi
	mkdir -p "$(dirname "$out")"
	exec 9>"$out.lock"
	if command -v flock >/dev/null 2>&1; then
		if ! flock -n 9; then
			echo "$name: another build is running; waiting for it"
			flock 9
		fi
		if [[ "$force" != "--force" ]] && up_to_date; then
			echo "$name: $out was built meanwhile"
			return 0
		fi
	fi
	echo "$name: building $what (${tooldir#"$root/"}) into $out; this takes $takes"
	tmp="$out.tmp.$$"
	trap 'rm -f "$tmp"' EXIT
	local start
	start=$(date +%s)
	(cd "$tooldir" && build "$tmp")
	mv -f "$tmp" "$out"
	echo "$want" >"$out.stamp"
	(cd "$tooldir" && after_build)
	echo "$name: built $what in $(($(date +%s) - start))s"
}
