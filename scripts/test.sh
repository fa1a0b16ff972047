#!/usr/bin/env bash
# The whole test suite: `make test` and .ci/run call this.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

# The chat fan-out and the idle-connection tests open thousands of sockets.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# Two modules: the root (host, plugins, examples, test harness) and the SDK
# (sdk/go.mod), which ./... in the root does not reach.
echo "== go vet"
go vet ./...
(cd sdk && go vet ./...)

echo "== go.mod and go.sum of both modules are tidy"
for m in . sdk; do
	(cd "$m" && go mod tidy -diff) || { echo "$m: go mod tidy would change go.mod or go.sum (run it there)"; exit 1; }
done

echo "== the SDK, sdktest, plugins and examples build for macOS and Windows"
for os in darwin windows; do
	(cd sdk && GOOS=$os go build ./... && GOOS=$os go vet ./...)
	GOOS=$os go build ./plugins/... ./examples/...
	GOOS=$os go vet ./plugins/... ./examples/...
done

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go') | grep -v '\.pb\.go$' || true)
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== generated code is reproducible"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
SOCKPLAY_GEN_OUT="$tmp" bash sdk/protocol/gen.sh
for f in control.pb.go control_grpc.pb.go; do
	cmp "$tmp/$f" "sdk/protocol/$f" || { echo "sdk/protocol/$f differs from go generate's output"; exit 1; }
done

echo "== Python generated code is reproducible"
SOCKPLAY_GEN_OUT="$tmp/py" bash sdk/python/gen.sh
gen=$(cd "$tmp/py/sockplay/_proto" && ls)
have=$(cd sdk/python/sockplay/_proto && ls -- *_pb2*.py)
[ "$gen" = "$have" ] || { echo "sdk/python/sockplay/_proto: generated files differ: want $gen, have $have"; exit 1; }
for f in $gen; do
	cmp "$tmp/py/sockplay/_proto/$f" "sdk/python/sockplay/_proto/$f" || { echo "sdk/python/sockplay/_proto/$f differs from gen.sh's output"; exit 1; }
done

echo "== python3 -m unittest: the Python SDK and its examples"
# Debian's interpreter: the SDK's dependencies are Debian packages, which a
# python3 found first on PATH (pyenv, a virtualenv) would not see.
(cd sdk/python && /usr/bin/python3 -m unittest discover -s tests)
if ls examples/python/test_*.py >/dev/null 2>&1; then
	(cd examples/python && PYTHONPATH=../../sdk/python /usr/bin/python3 -m unittest discover -s . -p 'test_*.py')
fi

echo "== go test -race"
(cd sdk && go test -race -count=1 -timeout 30m ./...)
go test -race -count=1 -timeout 30m ./...
