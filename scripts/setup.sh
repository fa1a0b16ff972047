#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine: netcat-openbsd (nc),
# python3 (the tutorial's clients), protobuf-compiler (the generated-code
# check), the Python SDK's Debian packages (python3-grpcio, python3-protobuf,
# python3-cryptography; protobuf-compiler-grpc and libprotobuf-dev for its
# generated-code check), haproxy (the PROXY protocol test sends through a
# real one), systemd's systemd-socket-activate (the socket activation test),
# chromium (the admin page's test drives Debian's headless Chromium with
# chromedp), and the Go modules. Safe to run again; installs only
# what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v nc >/dev/null 2>&1 && nc -h 2>&1 | grep -q -- '-N' || need+=(netcat-openbsd)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v systemd-socket-activate >/dev/null 2>&1 || need+=(systemd)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# The Python SDK runs on Debian's /usr/bin/python3 with Debian's packages.
for pkg in python3-grpcio python3-protobuf python3-cryptography protobuf-compiler-grpc libprotobuf-dev; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
	echo "setup: installing ${need[*]}" >&2
	if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
go mod download
