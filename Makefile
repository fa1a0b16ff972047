# sockplay: `make run` builds everything and serves every bundled plugin on
# loopback; `make test` runs the whole test suite (what CI runs).
GO       ?= go
BIN      := bin
PLUGINS  := $(notdir $(patsubst %/,%,$(dir $(wildcard plugins/*/main.go))))
# Python plugins: examples/python/NAME.py becomes bin/sockplay-pyNAME, one
# executable file each (a zipapp of the script and the SDK, run by Debian's
# /usr/bin/python3; see sdk/python/build_plugin.py).
PYTHON   ?= python3
PYPLUGINS := $(filter-out test_%,$(basename $(notdir $(wildcard examples/python/*.py))))
ARGS     ?=

.PHONY: all build run test check bench setup generate clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/sockplay ./host
	@for p in $(PLUGINS); do echo "$(GO) build -o $(BIN)/sockplay-$$p ./plugins/$$p"; \
		$(GO) build -o $(BIN)/sockplay-$$p ./plugins/$$p || exit 1; done
ifneq ($(PYPLUGINS),)
	$(PYTHON) sdk/python/build_plugin.py $(BIN) $(foreach p,$(PYPLUGINS),py$(p)=examples/python/$(p).py)
endif

# Serve every bundled plugin on its default 127.0.0.1 address. Ctrl-C stops.
run: build
	./$(BIN)/sockplay serve $(ARGS)

# The whole suite: set-up, vet, gofmt, generated code, go test -race.
test:
	bash scripts/test.sh

setup:
	bash scripts/setup.sh

bench: build
	bash scripts/bench.sh

generate:
	$(GO) generate ./...

clean:
	rm -rf $(BIN)
