#!/usr/bin/env bash
# Installs what sockplay needs on a fresh Debian machine, and only what is
# missing. Safe to run again.
#
#   setup.sh run    what `make run` needs to serve every bundled plugin: the
#                   Debian packages the Python plugins import (python3-grpcio,
#                   python3-protobuf, python3-cryptography). Where it cannot
#                   install them (not root and no password-less sudo, no
#                   network), it says so in one line and exits 0: the host
#                   then serves the plugins that can run.
#   setup.sh [test] what the suite needs too, and fails if it cannot:
#                   netcat-openbsd (nc), python3 (the tutorial's clients),
#                   protobuf-compiler (the generated-code check), the Python
#                   SDK's packages (and protobuf-compiler-grpc, libprotobuf-dev
#                   for its generated-code check), haproxy (the PROXY protocol
#                   test sends through a real one), systemd's
#                   systemd-socket-activate (the socket activation test),
#                   chromium (the admin page's test drives Debian's headless
#                   Chromium with chromedp), and the Go modules.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-test}

# The Python SDK runs on Debian's /usr/bin/python3 with Debian's packages.
run_packages=(python3-grpcio python3-protobuf python3-cryptography)

missing() { # the packages among $@ that dpkg does not have installed
	for pkg in "$@"; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || echo "$pkg"
	done
}

# install PKG...: apt-get as root, or through password-less sudo. Returns 1
# with the reason in $why when it cannot.
why=
install() {
	local sudo=
	if [ "$(id -u)" != 0 ]; then
		if ! command -v sudo >/dev/null 2>&1 || ! sudo -n true 2>/dev/null; then
			why="not root, and no password-less sudo"
			return 1
		fi
		sudo="sudo -n"
	fi
	export DEBIAN_FRONTEND=noninteractive
	if ! $sudo apt-get update -qq >/dev/null 2>&1; then
		why="apt-get update failed (no network?)"
		return 1
	fi
	if ! $sudo apt-get install -y -qq "$@" >/dev/null 2>&1; then
		why="apt-get install failed"
		return 1
	fi
}

if [ "$mode" = run ]; then
	command -v dpkg-query >/dev/null 2>&1 || exit 0 # not Debian: nothing we know how to install
	mapfile -t need < <(missing "${run_packages[@]}")
	[ ${#need[@]} -eq 0 ] && exit 0
	echo "make run: installing ${need[*]} (the Python plugins import them)" >&2
	if ! install "${need[@]}"; then
		echo "make run: could not install ${need[*]}: $why; the Python plugins will not start (as root: apt-get install ${need[*]}), the others will" >&2
	fi
	exit 0
fi

need=()
command -v nc >/dev/null 2>&1 && nc -h 2>&1 | grep -q -- '-N' || need+=(netcat-openbsd)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v systemd-socket-activate >/dev/null 2>&1 || need+=(systemd)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
mapfile -t more < <(missing "${run_packages[@]}" protobuf-compiler-grpc libprotobuf-dev)
need+=("${more[@]}")
if [ ${#need[@]} -gt 0 ]; then
	echo "setup: installing ${need[*]}" >&2
	install "${need[@]}" || { echo "setup: could not install ${need[*]}: $why" >&2; exit 1; }
fi
go mod download
(cd sdk && go mod download) # the SDK's own module (sdk/go.mod)
