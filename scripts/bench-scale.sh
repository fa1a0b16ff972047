#!/usr/bin/env bash
# How the costs grow: `make bench-scale` calls this after `make build`.
# It builds COPIES copies of the echo plugin under the names echo01, echo02,
# ... (one binary each, since a plugin binary is named after its plugin) into
# a temporary plugin directory, and runs the bench's two scaling
# measurements: a ping-pong over 1 to 10,000 connections at once against the
# plugin and the direct server, and hosts serving 1 to 20 plugins (start time
# and memory). Extra flags go to the bench: make bench-scale BENCH_ARGS='--rounds 5'.
set -euo pipefail
cd "$(dirname "$0")/.."

copies=${COPIES:-20}
dir=$(mktemp -d "${TMPDIR:-/tmp}/sockplay-copies-XXXXXX")
trap 'rm -rf "$dir"' EXIT
for i in $(seq -f %02g 1 "$copies"); do
	go build -ldflags "-X main.name=echo$i" -o "$dir/sockplay-echo$i" ./plugins/echo
done
echo "bench-scale: $copies copies of echo in $dir" >&2

# 10,000 connections: the bench holds one end, the server the other.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

go build -o bin/bench ./bench
plugins=""
for n in 1 5 10 20; do
	if [ "$n" -le "$copies" ]; then plugins="${plugins:+$plugins,}$n"; fi
done
# Not exec: the trap removes the copies afterwards.
./bin/bench --bin bin --scenario scale-conns,scale-plugins --plugin-copies "$dir" \
	--scale-plugins "$plugins" --rounds 3 ${BENCH_ARGS:-}
