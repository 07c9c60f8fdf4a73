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
# labelled with a hash of what it is made from and saved under
# .build/docker/; an image whose label matches is kept, a saved one is
# loaded, anything else is made again. A run with everything cached takes
# seconds.
#
# Usage: scripts/docker-images.sh
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
go_key="$(echo "$rootfs_key $host_go $(go env GOROOT GOOS GOARCH) $(cat "$(go env GOROOT)/VERSION" | head -1)" | hash)"
runtime_key="$(echo "$rootfs_key runtime-v1 nonroot 65532" | hash)"
kratos_key="$(
	{
		echo "$rootfs_key kratos-v1 ory 10000"
		sha256sum <"$kratos_bin"
	} | hash
)"

# current TAG KEY: whether the engine holds TAG made from KEY.
current() {
	[[ "$(docker image inspect -f "{{index .Config.Labels \"$label\"}}" "$1" 2>/dev/null || true)" == "$2" ]]
}

# ensure TAG KEY MAKER: keeps, loads or makes TAG, then saves it.
ensure() {
	local tag=$1 key=$2 maker=$3
	local saved="$cache/$(echo "$tag" | tr '/:' '__')-$key.tar"
	if current "$tag" "$key"; then
		say "$tag is current"
		return
	fi
	if [[ -f "$saved" ]]; then
		docker load -q -i "$saved" >/dev/null
		if current "$tag" "$key"; then
			say "$tag loaded from ${saved#"$root/"}"
			return
		fi
	fi
	local start=$SECONDS
	"$maker" "$tag" "$key"
	current "$tag" "$key" || die "$tag was made but does not carry its inputs label"
	rm -f "$cache/$(echo "$tag" | tr '/:' '__')"-*.tar
	docker save -o "$saved.tmp" "$tag"
	mv -f "$saved.tmp" "$saved"
	say "$tag made in $((SECONDS - start))s"
}

# --- the root file system ---------------------------------------------------

rootfs_tar="$cache/rootfs-$codename-$rootfs_key.tar"
if [[ ! -f "$rootfs_tar" ]]; then
	command -v debootstrap >/dev/null || die "debootstrap is missing: run scripts/install-test-deps.sh"
	say "debootstrap $codename (minbase, $arch) from apt's mirror; a few minutes the first time"
	start=$SECONDS
	dir="$cache/rootfs.tmp"
	rm -rf "$dir" "$rootfs_tar.tmp"
	debootstrap --variant=minbase --include="$packages" --arch="$arch" "$codename" "$dir" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
		die "debootstrap failed; see ${cache#"$root/"}/debootstrap.log"
	# Nothing of apt's download cache or lists in the image.
	rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
	tar --numeric-owner -C "$dir" -cf "$rootfs_tar.tmp" .
	rm -rf "$dir"
	rm -f "$cache"/rootfs-*.tar
	mv -f "$rootfs_tar.tmp" "$rootfs_tar"
	say "rootfs made in $((SECONDS - start))s"
fi

make_debian() {
	docker import --change "LABEL $label=$2" --change 'CMD ["bash"]' "$rootfs_tar" "$1" >/dev/null
}

# --- the Go image -----------------------------------------------------------

make_go() {
	local goroot
	goroot="$(go env GOROOT)"
	# The toolchain directory is the build context, sent as it is.
	docker build -q -t "$1" -f - "$goroot" >/dev/null <<-EOF
		FROM $debian_tag
		COPY . /usr/local/go
		ENV GOLANG_VERSION=${host_go#go} GOTOOLCHAIN=local GOPATH=/go
		ENV PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
		RUN mkdir -p /go/src /go/bin && chmod -R 1777 /go && go version
		WORKDIR /go
		LABEL $label=$2
	EOF
}

# --- the runtime image ------------------------------------------------------

make_runtime() {
	local dir="$cache/runtime.tmp"
	rm -rf "$dir"
	mkdir -p "$dir/etc" "$dir/tmp" "$dir/home/nonroot" "$dir/root"
	tar -C "$dir" -xf "$rootfs_tar" ./etc/ssl/certs/ca-certificates.crt ./usr/share/zoneinfo ./usr/lib/os-release
	ln -s ../usr/lib/os-release "$dir/etc/os-release"
	cat >"$dir/etc/passwd" <<-EOF
		root:x:0:0:root:/root:/sbin/nologin
		nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
		nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
	EOF
	cat >"$dir/etc/group" <<-EOF
		root:x:0:
		nobody:x:65534:
		nonroot:x:65532:
	EOF
	echo "hosts: files dns" >"$dir/etc/nsswitch.conf"
	chmod 1777 "$dir/tmp"
	chmod 700 "$dir/root" "$dir/home/nonroot"
	chown 65532:65532 "$dir/home/nonroot"
	tar --numeric-owner -C "$dir" -c . | docker import \
		--change "LABEL $label=$2" --change 'USER 65532' --change 'WORKDIR /home/nonroot' \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
		- "$1" >/dev/null
	rm -rf "$dir"
}

# --- the Kratos image -------------------------------------------------------

make_kratos() {
	local dir="$cache/kratos.tmp"
	rm -rf "$dir"
	mkdir -p "$dir"
	cp "$kratos_bin" "$dir/kratos"
	docker build -q -t "$1" -f - "$dir" >/dev/null <<-EOF
		FROM $debian_tag
		RUN groupadd -r -g 10000 ory && useradd -r -u 10000 -g ory -d /home/ory -m -s /usr/sbin/nologin ory \
		 && mkdir -p /var/lib/sqlite && chown ory:ory /var/lib/sqlite
		COPY kratos /usr/bin/kratos
		# Created by ory, so a fresh named volume mounted here is ory's too.
		VOLUME /var/lib/sqlite
		USER ory
		WORKDIR /home/ory
		EXPOSE 4433 4434
		ENTRYPOINT ["kratos"]
		CMD ["serve"]
		LABEL $label=$2
	EOF
	rm -rf "$dir"
}

ensure "$debian_tag" "$rootfs_key" make_debian
ensure "$go_tag" "$go_key" make_go
ensure "$runtime_tag" "$runtime_key" make_runtime
ensure "$kratos_tag" "$kratos_key" make_kratos
say "ready: $go_tag, $runtime_tag, $kratos_tag"
