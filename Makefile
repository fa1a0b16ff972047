# sockplay: `make run` builds everything and serves every bundled plugin on
# loopback; `make test` runs the whole test suite (what CI runs).
GO       ?= go
BIN      ?= bin
PLUGINS  := $(notdir $(patsubst %/,%,$(dir $(wildcard plugins/*/main.go))))
# Python plugins: examples/python/NAME.py becomes bin/sockplay-pyNAME, one
# executable file each (a zipapp of the script and the SDK, run by Debian's
# /usr/bin/python3; see sdk/python/build_plugin.py).
PYTHON   ?= python3
PYPLUGINS := $(filter-out test_%,$(basename $(notdir $(wildcard examples/python/*.py))))
ARGS     ?=
# Stamp the VCS revision into the binaries (`sockplay version`) even where
# GOFLAGS says -buildvcs=false; "auto" builds outside git too.
GOBUILD  := $(GO) build -buildvcs=auto
PREFIX   ?= /usr/local
BINDIR   ?= $(PREFIX)/bin
MANDIR   ?= $(PREFIX)/share/man
MANOUT   ?= man

.PHONY: all build run test check bench bench-scale bench-files setup generate clean install man

all: build

build:
	@mkdir -p $(BIN)
	$(GOBUILD) -o $(BIN)/sockplay ./host
	@for p in $(PLUGINS); do echo "$(GOBUILD) -o $(BIN)/sockplay-$$p ./plugins/$$p"; \
		$(GOBUILD) -o $(BIN)/sockplay-$$p ./plugins/$$p || exit 1; done
ifneq ($(PYPLUGINS),)
	$(PYTHON) sdk/python/build_plugin.py $(BIN) $(foreach p,$(PYPLUGINS),py$(p)=examples/python/$(p).py)
endif

# Serve every bundled plugin on its default 127.0.0.1 address. Ctrl-C stops.
# First installs what the Python plugins need, where it can (scripts/setup.sh
# run); a plugin that cannot start is logged and the others serve.
# The banner ends with the live page's address (--admin, 127.0.0.1:12380).
run: build
	@bash scripts/setup.sh run
	@echo "make run: serving on 127.0.0.1; the host prints the live page's URL (sockplay: live page at ...)"
	./$(BIN)/sockplay serve $(ARGS)

# The whole suite: set-up, vet, gofmt, generated code, go test -race.
test:
	bash scripts/test.sh

setup:
	bash scripts/setup.sh

bench: build
	bash scripts/bench.sh

# How the costs grow with connections (1 to 10,000) and plugins (1 to 20): BENCHMARKS.md.
bench-scale: build
	bash scripts/bench-scale.sh

# filexfer put and get of 1 GiB against rsync's daemon on loopback (installs
# rsync when missing): `make bench-files BENCH_FILES_ARGS='--rounds 9 --scale'`.
bench-files: build
	bash scripts/bench-files.sh $(BENCH_FILES_ARGS)

# Both modules: the root and the SDK's (sdk/go.mod).
generate:
	$(GO) generate ./...
	cd sdk && $(GO) generate ./...

# Install sockplay and every sockplay-NAME into $(BINDIR), where the host
# finds its plugins (its own directory), and the man pages into $(MANDIR).
# DESTDIR stages a package: make install DESTDIR=/tmp/pkg PREFIX=/usr
install: build man
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1
	install -m 0755 $(BIN)/sockplay $(BIN)/sockplay-* $(DESTDIR)$(BINDIR)/
	install -m 0644 $(MANOUT)/*.1 $(DESTDIR)$(MANDIR)/man1/

# Man pages, one per command, from the same cobra tree as --help.
man:
	$(GO) run ./host/internal/cli/genman $(MANOUT)

clean:
	rm -rf $(BIN) $(MANOUT)
