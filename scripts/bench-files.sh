#!/usr/bin/env bash
# bench-files: filexfer against rsync's daemon, side by side on loopback.
# `make bench-files` calls this after `make build`;
# `make bench-files BENCH_FILES_ARGS='--rounds 9 --scale'` passes flags.
#
# What runs, all on 127.0.0.1, in a temporary directory on the disk that holds
# $TMPDIR (or --dir DIR):
#   - filexfer: bin/sockplay serve --enable filexfer, the real host and
#     plugin, serving a writable root; the client is bin/sockplay-filexfer put
#     and get (SHA-256 end to end; both directions fsync before they report
#     success);
#   - rsync: rsync --daemon --no-detach with a config file in the temporary
#     directory (one writable module, no chroot); the client is
#     rsync --whole-file against rsync://127.0.0.1:PORT/bench/. Uploads add
#     --fsync, since filexfer's put fsyncs before it answers; downloads are
#     plain rsync.
# Both tools read the same source file (one inode, hard-linked into both
# roots), warm in the page cache after an untimed warm-up round. A round runs
# put then get for each tool, alternating which tool goes first; every
# destination is removed before and right after its measurement, so no run
# finds another's dirty pages.
#
# Reported per size and direction: MiB/s (2^20 bytes per second of wall time,
# client start to exit) as the median over the rounds and its min-max; CPU
# seconds per GiB of the client and the serving process together (the plugin
# process for filexfer, the daemon's forked children for rsync), median; and
# the ratio filexfer/rsync of the median MiB/s, with the min-max of the
# per-round ratios. --scale adds 1 MiB, 16 MiB, 256 MiB and, when the disk has
# room, 4 GiB (3 rounds each, 5 for the small sizes).
#
# Bounded: every command runs under `timeout 600`, rounds are 1..50, sizes are
# fixed, and a size is skipped when the disk has less than 3 times it plus
# 1 GiB free. Installs rsync from Debian (apt-get) when it is missing.
#
# Usage: scripts/bench-files.sh [--rounds N] [--size BYTES] [--scale] [--dir DIR]
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=5
size=$((1 << 30))
scale=0
base=${TMPDIR:-/tmp}
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) rounds=${2:?}; shift 2 ;;
	--size) size=${2:?}; shift 2 ;;
	--scale) scale=1; shift ;;
	--dir) base=${2:?}; shift 2 ;;
	*) echo "usage: $0 [--rounds N] [--size BYTES] [--scale] [--dir DIR]" >&2; exit 2 ;;
	esac
done
case $rounds in '' | *[!0-9]*) rounds=0 ;; esac
[ "$rounds" -ge 1 ] && [ "$rounds" -le 50 ] || { echo "bench-files: --rounds must be 1..50" >&2; exit 2; }

if ! command -v rsync >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
	echo "bench-files: installing rsync" >&2
	export DEBIAN_FRONTEND=noninteractive
	{ $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends rsync >/dev/null; } ||
		{ echo "bench-files: could not install rsync" >&2; exit 1; }
fi
[ -x bin/sockplay ] && [ -x bin/sockplay-filexfer ] || { echo "bench-files: run make build first" >&2; exit 1; }

W=$(mktemp -d "$base/sockplay-bench-files-XXXXXX")
HP="" RP=""
cleanup() {
	[ -n "$HP" ] && kill -TERM "$HP" 2>/dev/null && wait "$HP" 2>/dev/null
	[ -n "$RP" ] && kill -TERM "$RP" 2>/dev/null && wait "$RP" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
mkdir -p "$W/fx" "$W/rs"

TICK=$(getconf CLK_TCK)
# cpu_of PID FIELDS: CPU seconds from /proc/PID/stat (14 15: the process's
# own user+system; 16 17: its reaped children's).
cpu_of() { awk -v t="$TICK" -v a="$2" -v b="$3" '{ sub(/^.*\) /, ""); printf "%.3f", ($(a - 2) + $(b - 2)) / t }' "/proc/$1/stat"; }

# --- the servers ---
TMPDIR="$W" bin/sockplay serve --enable filexfer --listen filexfer=127.0.0.1:0 \
	--set "filexfer.root=$W/fx" --set filexfer.writable=true --set filexfer.maxfile=0 \
	--status-file "$W/status.json" >"$W/host.out" 2>&1 &
HP=$!
for _ in $(seq 100); do grep -q '^sockplay: serving' "$W/host.out" && break; sleep 0.1; done
FX=$(awk '$1 == "filexfer" { print $4 }' "$W/host.out")
[ -n "$FX" ] || { echo "bench-files: sockplay did not start:" >&2; cat "$W/host.out" >&2; exit 1; }
FXPID=$(awk '$1 == "filexfer" { print $6 }' "$W/host.out")
[ -r "/proc/$FXPID/stat" ] || { echo "bench-files: no plugin process in: $(head -1 "$W/host.out")" >&2; exit 1; }

for _ in $(seq 10); do
	RPORT=$(shuf -i 20000-29999 -n 1)
	cat >"$W/rsyncd.conf" <<EOF
address = 127.0.0.1
port = $RPORT
use chroot = no
reverse lookup = no
pid file = $W/rsyncd.pid
log file = $W/rsyncd.log
[bench]
	path = $W/rs
	read only = false
	uid = $(id -u)
	gid = $(id -g)
EOF
	rsync --daemon --no-detach --config="$W/rsyncd.conf" &
	RP=$!
	for _ in $(seq 50); do
		rsync "rsync://127.0.0.1:$RPORT/" >/dev/null 2>&1 && break 2
		kill -0 "$RP" 2>/dev/null || break
		sleep 0.1
	done
	kill -TERM "$RP" 2>/dev/null; wait "$RP" 2>/dev/null || true; RP=""
done
[ -n "$RP" ] || { echo "bench-files: rsync --daemon did not start:" >&2; cat "$W/rsyncd.log" >&2; exit 1; }
RS="rsync://127.0.0.1:$RPORT/bench"
echo "bench-files: filexfer on $FX (plugin pid $FXPID), rsync daemon on 127.0.0.1:$RPORT ($(rsync --version | head -1)), in $W" >&2

# measure SERVERPID FIELDS CMD...: runs CMD (at most 10 minutes) and prints
# "WALL_NS CPU_S": its wall time, and the CPU of the client plus the server's.
measure() {
	local pid=$1 fields=$2 t0 t1 c0 c1 cli
	shift 2
	c0=$(cpu_of "$pid" $fields)
	t0=$(date +%s%N)
	cli=$( { TIMEFORMAT='%3U %3S'; time timeout 600 "$@" >/dev/null 2>"$W/err"; } 2>&1 ) ||
		{ echo "bench-files: failed: $*: $(cat "$W/err")" >&2; return 1; }
	t1=$(date +%s%N)
	# rsync's daemon counts a child's CPU once it has reaped it.
	for _ in $(seq 50); do pgrep -P "$pid" >/dev/null 2>&1 || break; sleep 0.02; done
	c1=$(cpu_of "$pid" $fields)
	awk -v w=$((t1 - t0)) -v c="$cli" -v a="$c0" -v b="$c1" 'BEGIN { split(c, u, " "); printf "%.0f %.3f", w, u[1] + u[2] + b - a }'
}

# One measurement; prints "MIB_PER_S CPU_S_PER_GIB".
rate() { awk -v s="$S" -v r="$1" 'BEGIN { split(r, x, " "); printf "%.1f %.3f", s / 1048576 / (x[1] / 1e9), x[2] / (s / 1073741824) }'; }
put_fx() { local m; rm -f "$W/fx/up"; m=$(measure "$FXPID" "14 15" bin/sockplay-filexfer put -q "$FX" "$W/src" up) || exit 1; rm -f "$W/fx/up"; rate "$m"; }
put_rs() { local m; rm -f "$W/rs/up"; m=$(measure "$RP" "16 17" rsync --whole-file --fsync "$W/src" "$RS/up") || exit 1; rm -f "$W/rs/up"; rate "$m"; }
get_fx() { local m; rm -f "$W/got"; m=$(measure "$FXPID" "14 15" bin/sockplay-filexfer get -q "$FX" src "$W/got") || exit 1; rm -f "$W/got"; rate "$m"; }
get_rs() { local m; rm -f "$W/got"; m=$(measure "$RP" "16 17" rsync --whole-file "$RS/src" "$W/got") || exit 1; rm -f "$W/got"; rate "$m"; }

# stats prints "median min max" of its arguments.
stats() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
	m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.2f %.2f %.2f", m, v[1], v[NR] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
human() { awk -v b="$1" 'BEGIN { split("B KiB MiB GiB TiB", u); i = 1; while (b >= 1024 && i < 5) { b /= 1024; i++ } printf "%g %s", b, u[i] }'; }

# line DIR SPEEDS_FX CPUS_FX SPEEDS_RS CPUS_RS RATIOS: one line of the report.
line() {
	local a b c fm fr rm rr
	read -r a b c <<<"$(stats $2)"; fm=$a fr="$b-$c"
	read -r a b c <<<"$(stats $4)"; rm=$a rr="$b-$c"
	read -r a b c <<<"$(stats $6)"
	printf '%-8s %-4s %9s %-17s %6s %9s %-17s %6s %6s (%s-%s)\n' "$(human "$S")" "$1" \
		"$fm" "($fr)" "$(stats $3 | cut -d' ' -f1)" "$rm" "($rr)" "$(stats $5 | cut -d' ' -f1)" "$(ratio "$fm" "$rm")" "$b" "$c"
}

# bench SIZE ROUNDS: one size; prints a line per direction.
bench() {
	S=$1
	local n=$2 r pf pr gf gr free need
	local PFS="" PFC="" PRS="" PRC="" GFS="" GFC="" GRS="" GRC="" RPUT="" RGET=""
	free=$(df -P -B1 "$W" | awk 'NR == 2 { print $4 }')
	need=$((S * 3 + (1 << 30)))
	if [ "$free" -lt "$need" ]; then
		echo "bench-files: skipping $(human "$S"): $free bytes free on $W, need $need" >&2
		return 0
	fi
	rm -f "$W/src" "$W/fx/src" "$W/rs/src"
	head -c "$S" /dev/urandom >"$W/src"
	ln "$W/src" "$W/fx/src"
	ln "$W/src" "$W/rs/src"
	sync
	# Warm-up, untimed: the page cache, filexfer's checksum cache, both
	# servers' first connection.
	put_fx >/dev/null; put_rs >/dev/null; get_fx >/dev/null; get_rs >/dev/null
	for r in $(seq "$n"); do
		if [ $((r % 2)) = 1 ]; then
			pf=$(put_fx); pr=$(put_rs); gf=$(get_fx); gr=$(get_rs)
		else
			pr=$(put_rs); pf=$(put_fx); gr=$(get_rs); gf=$(get_fx)
		fi
		PFS+=" ${pf% *}" PFC+=" ${pf#* }" PRS+=" ${pr% *}" PRC+=" ${pr#* }"
		GFS+=" ${gf% *}" GFC+=" ${gf#* }" GRS+=" ${gr% *}" GRC+=" ${gr#* }"
		RPUT+=" $(ratio "${pf% *}" "${pr% *}")" RGET+=" $(ratio "${gf% *}" "${gr% *}")"
		echo "bench-files: $(human "$S") round $r/$n: put filexfer ${pf% *} rsync ${pr% *} MiB/s; get filexfer ${gf% *} rsync ${gr% *} MiB/s" >&2
	done
	line put "$PFS" "$PFC" "$PRS" "$PRC" "$RPUT"
	line get "$GFS" "$GFC" "$GRS" "$GRC" "$RGET"
	rm -f "$W/src" "$W/fx/src" "$W/rs/src"
}

echo "# filexfer against rsync --daemon on 127.0.0.1, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
echo "# put: sockplay-filexfer put | rsync --whole-file --fsync;  get: sockplay-filexfer get | rsync --whole-file"
echo "# MiB/s: median (min-max) over the rounds; CPU: client + server CPU seconds per GiB, median; ratio: filexfer/rsync MiB/s (per-round min-max)"
printf '%-8s %-4s %9s %-17s %6s %9s %-17s %6s %6s\n' size dir filexfer "(min-max)" CPU rsync "(min-max)" CPU ratio
bench "$size" "$rounds"
if [ "$scale" = 1 ]; then
	for s in $((1 << 20)) $((16 << 20)) $((256 << 20)) $((1 << 30)) $((4 << 30)); do
		[ "$s" = "$size" ] && continue
		n=3
		[ "$s" -le $((16 << 20)) ] && n=5
		bench "$s" "$n"
	done
fi
