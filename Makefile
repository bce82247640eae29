# Floorlink: `make test` is what CI runs (.ci/run); `make demo` is the first thing to try.
GO ?= go
PKGS := ./...

.PHONY: deps test vet build bench clean

deps:
	./scripts/deps.sh

vet:
	$(GO) vet $(PKGS)

test: deps vet
	$(GO) test -race -timeout 20m $(PKGS)

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/ ./cmd/...

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

clean:
	rm -rf bin dist
