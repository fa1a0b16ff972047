#!/usr/bin/env bash
# Regenerates the Python gRPC code in sockplay/_proto/ from
#   ../protocol/control.proto                   the control service
#   proto/health.proto                          grpc.health.v1 (go-plugin pings it)
#   go-plugin's internal/plugin/grpc_controller.proto and grpc_stdio.proto,
#     from the Go module cache at the version go.mod requires
# with Debian's protoc (protobuf-compiler 3.21.12, the one the Go code is made
# with) and grpc_python_plugin (protobuf-compiler-grpc 1.51.1, the release of
# python3-grpcio). Debian's python3-grpc-tools is not used: bookworm ships
# 1.14.1, whose bundled protoc 3.6 writes code in the old descriptor style.
# The output is byte-for-byte reproducible; scripts/test.sh checks it.
set -euo pipefail
cd "$(dirname "$0")"
out=$(realpath "${SOCKPLAY_GEN_OUT:-.}")

need=()
command -v protoc >/dev/null || need+=(protobuf-compiler)
command -v grpc_python_plugin >/dev/null || need+=(protobuf-compiler-grpc)
[ -e /usr/include/google/protobuf/empty.proto ] || need+=(libprotobuf-dev)
if [ ${#need[@]} -gt 0 ]; then
	echo "gen.sh: installing ${need[*]}" >&2
	if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
	$SUDO apt-get install -y -qq "${need[@]}" >/dev/null || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${need[@]}" >/dev/null; }
fi

goplugin=$(cd ../.. && go list -m -f '{{.Dir}}' github.com/hashicorp/go-plugin)
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
# The files sit under sockplay/_proto/ so that the generated imports are
# "from sockplay._proto import ...".
mkdir -p "$src/sockplay/_proto"
cp ../protocol/control.proto proto/health.proto \
	"$goplugin/internal/plugin/grpc_controller.proto" "$goplugin/internal/plugin/grpc_stdio.proto" \
	"$src/sockplay/_proto/"
mkdir -p "$out/sockplay/_proto"
(cd "$src" && protoc -I. -I/usr/include \
	--plugin=protoc-gen-grpc_python="$(command -v grpc_python_plugin)" \
	--python_out="$out" --grpc_python_out="$out" \
	sockplay/_proto/control.proto sockplay/_proto/health.proto \
	sockplay/_proto/grpc_controller.proto sockplay/_proto/grpc_stdio.proto)
