#!/usr/bin/env bash
# The data-path benchmark: `make bench` calls this after `make build`.
# It installs the classic super-servers the bench compares against (xinetd and
# ucspi-tcp's tcpserver) when they are missing, raises the descriptor limit
# for the 10,000-connection memory check, and runs bench/ against bin/.
# Extra flags go to the bench: `make bench BENCH_ARGS='--rounds 9'`.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v xinetd >/dev/null 2>&1 || need+=(xinetd)
command -v tcpserver >/dev/null 2>&1 || need+=(ucspi-tcp)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
	echo "bench: installing ${need[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }; then
		echo "bench: could not install ${need[*]}; the bench will skip them" >&2
	fi
	# Debian's package starts a system xinetd; the bench runs its own.
fi

# 10,000 idle connections: the bench holds one end, the echo plugin the other.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

go build -o bin/bench ./bench
exec ./bin/bench --bin bin ${BENCH_ARGS:-}
