#!/usr/bin/env bash
# Makes, on this machine, the images the Dockerfile and docker-compose.yml
# name but that no registry supplies here, so that both files can be built
# and run unchanged:
#
#   debian rootfs   debootstrap (minbase) of this machine's Debian release
#                   from the mirror apt is configured with, imported with
#                   `docker import`
#   golang:<GO_VERSION>-<codename>
#                   the build stage's image: that rootfs plus this machine's
#                   Go toolchain ($(go env GOROOT)) at /usr/local/go; no
#                   module cache (the build downloads modules itself)
#   gcr.io/distroless/static-debian12:nonroot
#                   the final stages' image: CA certificates, time zones,
#                   os-release and /etc/passwd with the nonroot user (65532)
#                   taken from the rootfs; no shell, no package manager
#   oryd/kratos:<version>
#                   the rootfs plus the Kratos binary scripts/build-kratos.sh
#                   builds, laid out like Ory's image: user ory (10000),
#                   /var/lib/sqlite owned by it, ENTRYPOINT kratos
#
# The tags are read from the Dockerfile and docker-compose.yml. Each image is
# one layer, imported from the root file system (kept under .build/docker/,
# the slow part) and a few files, and labelled with a hash of what it is
# made from: an image whose label matches is kept, anything else is made
# again. With the engine's images in place a run takes a second; with the
# root file system cached and an empty engine, a minute or so.
#
# Usage: scripts/docker-images.sh   (as root, or it re-runs itself with sudo:
#        debootstrap and the images' file owners need root)
# Exit status: 0 ready; 3 no Docker Engine answers; other: failure.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cache="$root/.build/docker"
mkdir -p "$cache"
label=org.portcullis.stand-in.inputs

say() { echo "docker-images: $*"; }
die() {
	say "$*" >&2
	exit 1
}

if ! docker info >/dev/null 2>&1; then
	say "no Docker Engine answers (docker info failed)" >&2
	exit 3
fi

# debootstrap, and the file ownerships the images need, take root.
if [[ $(id -u) -ne 0 ]]; then
	exec sudo -E env PATH="$PATH" "$0" "$@"
fi

# One maker at a time: parallel callers wait for the first.
exec 9>"$cache/lock"
flock 9

# --- what to make -----------------------------------------------------------

# shellcheck disable=SC1091
codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
[[ -n "$codename" ]] || die "/etc/os-release names no VERSION_CODENAME"
arch="$(dpkg --print-architecture)"

# The Debian mirror apt uses for this release (one-line or deb822 sources).
mirror="$(
	{
		cat /etc/apt/sources.list 2>/dev/null || true
		cat /etc/apt/sources.list.d/*.list 2>/dev/null || true
	} | awk -v s="$codename" '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($(i+1) == s) { print $i; exit } break } }'
)"
if [[ -z "$mirror" ]]; then
	mirror="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk -v s="$codename" '
		/^[[:space:]]*$/ { if (uri != "" && suites ~ ("(^| )" s "( |$)")) { print uri; exit } uri = ""; suites = "" }
		/^URIs:/ { uri = $2 }
		/^Suites:/ { $1 = ""; suites = $0 }
		END { if (uri != "" && suites ~ ("(^| )" s "( |$)")) print uri }' | head -1)"
fi
[[ -n "$mirror" ]] || die "no apt source for $codename in /etc/apt/sources.list*"

go_version="$(sed -n 's/^ARG GO_VERSION=//p' Dockerfile)"
go_tag="golang:${go_version}-${codename}"
grep -q '^FROM golang:${GO_VERSION}-'"$codename"' ' Dockerfile ||
	die "the Dockerfile's build stage is not golang:\${GO_VERSION}-$codename; update this script with it"
host_go="$(go env GOVERSION)"
[[ "$host_go" == "go$go_version" || "$host_go" == "go$go_version."* ]] ||
	die "the Dockerfile builds with Go $go_version; this machine has $host_go"
mapfile -t runtime_tags < <(sed -n 's/^FROM \(gcr\.io\/distroless\/[^ ]*\) AS .*/\1/p' Dockerfile | sort -u)
((${#runtime_tags[@]} == 1)) || die "the Dockerfile's final stages name ${#runtime_tags[@]} distroless images, want one"
runtime_tag="${runtime_tags[0]}"
mapfile -t kratos_tags < <(sed -n 's/^ *image: *\(oryd\/kratos:[^ ]*\) *$/\1/p' docker-compose.yml | sort -u)
((${#kratos_tags[@]} == 1)) || die "docker-compose.yml names ${#kratos_tags[@]} Kratos images, want one"
kratos_tag="${kratos_tags[0]}"

kratos_bin="$root/.build/bin/kratos"
[[ -x "$kratos_bin" ]] || die "$kratos_bin is missing: run scripts/build-kratos.sh (make kratos)"
kratos_version="$("$kratos_bin" version 2>/dev/null | awk '$1 == "Version:" { print $2; exit }')"
[[ "$kratos_tag" == "oryd/kratos:$kratos_version" ]] ||
	die "docker-compose.yml runs $kratos_tag; $kratos_bin is ${kratos_version:-of unknown version}"

hash() { sha256sum | cut -c1-16; }

# Inputs of each image; a change to any of them makes the image again.
packages=ca-certificates,tzdata
rootfs_key="$(echo "debootstrap $(debootstrap --version) minbase $packages $codename $arch $mirror" | hash)"
debian_tag="portcullis-stand-in/debian:$codename"
go_key="$(echo "$rootfs_key go-v3 $host_go $(go env GOROOT GOOS GOARCH) $(cat "$(go env GOROOT)/VERSION" | head -1)" | hash)"
runtime_key="$(echo "$rootfs_key runtime-v3 nonroot 65532" | hash)"
kratos_key="$(
	{
		echo "$rootfs_key kratos-v3 ory 10000"
		sha256sum <"$kratos_bin"
	} | hash
)"

# current TAG KEY: whether the engine holds TAG made from KEY.
current() {
	[[ "$(docker image inspect -f "{{index .Config.Labels \"$label\"}}" "$1" 2>/dev/null || true)" == "$2" ]]
}

# ensure TAG KEY MAKER: keeps TAG when it is current, else makes it.
ensure() {
	local tag=$1 key=$2 maker=$3 start=$SECONDS
	if current "$tag" "$key"; then
		say "$tag is current"
		return
	fi
	local old
	old="$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)"
	"$maker" "$tag" "$key"
	current "$tag" "$key" || die "$tag was made but does not carry its inputs label"
	# The image this one replaced, unless something still uses it.
	[[ -z "$old" ]] || docker image rm "$old" >/dev/null 2>&1 || true
	say "$tag made in $((SECONDS - start))s"
}

# import TAG KEY DIR [CHANGES...]: imports DIR as TAG, with the Dockerfile
# CHANGES.
import() {
	local tag=$1 key=$2 dir=$3
	shift 3
	local -a changes=(--change "LABEL $label=$key")
	for c in "$@"; do changes+=(--change "$c"); done
	tar --numeric-owner -C "$dir" -c . | docker import "${changes[@]}" - "$tag" >/dev/null
}

# --- the root file system ---------------------------------------------------

rootfs="$cache/rootfs-$codename-$rootfs_key"
if [[ ! -d "$rootfs" ]]; then
	command -v debootstrap >/dev/null || die "debootstrap is missing: run scripts/install-test-deps.sh"
	say "debootstrap $codename (minbase, $arch) from apt's mirror; a few minutes the first time"
	start=$SECONDS
	tmp="$cache/rootfs.tmp"
	rm -rf "$tmp"
	debootstrap --variant=minbase --include="$packages" --arch="$arch" "$codename" "$tmp" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
		die "debootstrap failed; see ${cache#"$root/"}/debootstrap.log"
	# Nothing of apt's download cache or lists in the images.
	rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*
	rm -rf "$cache"/rootfs-*
	mv "$tmp" "$rootfs"
	say "rootfs made in $((SECONDS - start))s"
fi

# The directory an image is imported from: empty, or the rootfs (its files
# hard-linked: a file to change is removed and written anew, never edited).
stage="$cache/stage.tmp"
fresh_stage() {
	rm -rf "$stage"
	if [[ "${1:-}" == rootfs ]]; then
		cp -al "$rootfs" "$stage"
	else
		mkdir -p "$stage"
	fi
}
trap 'rm -rf "$stage"' EXIT

make_debian() {
	import "$1" "$2" "$rootfs" 'CMD ["bash"]'
}

# --- the Go image -----------------------------------------------------------

make_go() {
	fresh_stage rootfs
	mkdir -p "$stage/go/src" "$stage/go/bin"
	chmod -R 1777 "$stage/go"
	rm -rf "$stage/usr/local/go"
	cp -a "$(go env GOROOT)" "$stage/usr/local/go"
	import "$1" "$2" "$stage" \
		"ENV GOLANG_VERSION=${host_go#go} GOTOOLCHAIN=local GOPATH=/go" \
		'ENV PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		'WORKDIR /go' 'CMD ["bash"]'
	docker run --rm "$1" go version >/dev/null || die "$1: go version does not run"
}

# --- the runtime image ------------------------------------------------------

make_runtime() {
	fresh_stage
	mkdir -p "$stage/etc/ssl/certs" "$stage/usr/share" "$stage/usr/lib" "$stage/tmp" "$stage/home/nonroot" "$stage/root"
	cp -a "$rootfs/etc/ssl/certs/ca-certificates.crt" "$stage/etc/ssl/certs/"
	cp -a "$rootfs/usr/share/zoneinfo" "$stage/usr/share/"
	cp -a "$rootfs/usr/lib/os-release" "$stage/usr/lib/"
	ln -s ../usr/lib/os-release "$stage/etc/os-release"
	cat >"$stage/etc/passwd" <<-EOF
		root:x:0:0:root:/root:/sbin/nologin
		nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
		nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
	EOF
	cat >"$stage/etc/group" <<-EOF
		root:x:0:
		nobody:x:65534:
		nonroot:x:65532:
	EOF
	echo "hosts: files dns" >"$stage/etc/nsswitch.conf"
	chmod 1777 "$stage/tmp"
	chmod 700 "$stage/root" "$stage/home/nonroot"
	chown 65532:65532 "$stage/home/nonroot"
	import "$1" "$2" "$stage" 'USER 65532' 'WORKDIR /home/nonroot' \
		'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt'
}

# --- the Kratos image -------------------------------------------------------

make_kratos() {
	fresh_stage rootfs
	mkdir -p "$stage/var/lib/sqlite" "$stage/home/ory"
	rm -f "$stage/etc/passwd" "$stage/etc/group"
	{
		cat "$rootfs/etc/passwd"
		echo "ory:x:10000:10000:ory:/home/ory:/usr/sbin/nologin"
	} >"$stage/etc/passwd"
	{
		cat "$rootfs/etc/group"
		echo "ory:x:10000:"
	} >"$stage/etc/group"
	chmod 644 "$stage/etc/passwd" "$stage/etc/group"
	cp "$kratos_bin" "$stage/usr/bin/kratos"
	chmod 755 "$stage/usr/bin/kratos"
	# Owned by ory, so a fresh named volume mounted here is ory's too.
	chown 10000:10000 "$stage/var/lib/sqlite" "$stage/home/ory"
	import "$1" "$2" "$stage" 'VOLUME /var/lib/sqlite' 'USER ory' 'WORKDIR /home/ory' \
		'EXPOSE 4433 4434' 'ENTRYPOINT ["kratos"]' 'CMD ["serve"]'
	docker run --rm "$1" version >/dev/null || die "$1: kratos version does not run"
}

ensure "$debian_tag" "$rootfs_key" make_debian
ensure "$go_tag" "$go_key" make_go
ensure "$runtime_tag" "$runtime_key" make_runtime
ensure "$kratos_tag" "$kratos_key" make_kratos
say "ready: $go_tag, $runtime_tag, $kratos_tag"
