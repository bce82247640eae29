# Floorlink. `make test` is what CI runs (.ci/run); `make demo` is the first thing to try.
GO ?= go
PKGS := ./...
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# net/http without its bundled HTTP/2: the agent's listener is plain HTTP/1.1 on loopback, and
# the bundle is 0.6 MB of a binary that ships to small gateways (packaging/main.go and the
# size test in cmd/floorlink/crossbuild read this line).
BUILDTAGS := nethttpomithttp2
# The three gateway targets: os/arch[/arm version].
PLATFORMS := linux/amd64 linux/arm64 linux/arm/7

.PHONY: deps test vet build package bench demo generate clean

deps:
	./scripts/deps.sh

vet:
	$(GO) vet $(PKGS)

test: deps vet
	$(GO) test -race -timeout 20m $(PKGS)

demo:
	$(GO) run ./cmd/floorlink-demo -c configs/demo.yaml

# Static binaries (no cgo) of the agent and plcsim for every gateway target, in dist/.
build:
	@mkdir -p dist
	@for p in $(PLATFORMS); do \
		os=$$(echo $$p | cut -d/ -f1); arch=$$(echo $$p | cut -d/ -f2); arm=$$(echo $$p | cut -d/ -f3); \
		suffix=$$os-$$arch$${arm:+v$$arm}; \
		for cmd in floorlink plcsim; do \
			echo "build dist/$$cmd-$$suffix"; \
			CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch GOARM=$$arm $(GO) build -trimpath -tags "$(BUILDTAGS)" -ldflags "$(LDFLAGS)" \
				-o dist/$$cmd-$$suffix ./cmd/$$cmd || exit 1; \
		done; \
	done

# Debian packages of the agent for the three gateway targets (amd64, arm64, armhf), with its
# systemd unit, default config and maintainer scripts, in dist/. packaging/ drives nfpm as a Go
# library: only Go is needed.
package:
	$(GO) run ./packaging --version "$(VERSION)" --commit "$(COMMIT)" --out dist

# Regenerates committed generated code (Sparkplug B protobuf); CI needs no protoc.
generate:
	./scripts/generate.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

clean:
	rm -rf bin dist
