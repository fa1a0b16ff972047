#!/usr/bin/env bash
# Regenerates control.pb.go and control_grpc.pb.go from control.proto with
# pinned generators. protoc itself comes from Debian (protobuf-compiler 3.21.12),
# installed on demand; the generators are built with `go install` at fixed
# versions into a temporary GOBIN, so the output is byte-for-byte reproducible.
set -euo pipefail
cd "$(dirname "$0")"
PROTOC_GEN_GO=google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC=google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
if ! command -v protoc >/dev/null; then
	echo "gen.sh: installing protoc (Debian protobuf-compiler)" >&2
	if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
	$SUDO apt-get install -y -qq protobuf-compiler >/dev/null || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq protobuf-compiler >/dev/null; }
fi
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
GOBIN=$bin go install "$PROTOC_GEN_GO"
GOBIN=$bin go install "$PROTOC_GEN_GO_GRPC"
out=${SOCKPLAY_GEN_OUT:-.}
protoc --plugin=protoc-gen-go="$bin/protoc-gen-go" --plugin=protoc-gen-go-grpc="$bin/protoc-gen-go-grpc" \
	--go_out="$out" --go_opt=paths=source_relative \
	--go-grpc_out="$out" --go-grpc_opt=paths=source_relative \
	control.proto
