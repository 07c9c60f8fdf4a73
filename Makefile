# portcullis — the two commands of the README are `make demo` and `make test`.
GO      ?= go
BIN     := bin/portcullis
VERSION ?= $(shell git describe --tags --always 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/portcullis-proxy/portcullis/internal/app.version=$(VERSION)

.PHONY: build test test-deps kratos oathkeeper traefik check bench bench-go clean demo fuzz soak

## build: the portcullis binary in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/portcullis

## demo: build and start portcullis, Ory Kratos and the demo app on loopback (Ctrl-C stops them)
demo:
	scripts/demo.sh

## kratos: build Ory Kratos (tools/kratos) into .build/bin/kratos when missing
kratos:
	scripts/build-kratos.sh

## traefik: build Traefik (tools/traefik) into .build/bin/traefik, which the contrib/traefik test runs when present (not part of test-deps: about half an hour cold)
traefik:
	scripts/build-traefik.sh
## oathkeeper: build Ory Oathkeeper v0.40.9 (tools/oathkeeper) and its e2e helpers into .build/bin when missing
oathkeeper:
	scripts/build-oathkeeper.sh

## test-deps: everything the tests need that Go does not fetch by itself
test-deps: kratos oathkeeper
	scripts/install-test-deps.sh

## check: formatting and vet
check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

## test: every test, with the race detector, against a real Kratos
test: test-deps check
	scripts/test.sh

## bench: portcullis side by side with bare httputil, direct WebSockets and a real Kratos on loopback; prints the table (bench/README.md)
bench:
	$(GO) run ./bench $(BENCHFLAGS)

## bench-go: the go test benchmarks (rule matching, pipeline, tunnel)
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## fuzz: every fuzz target in turn for FUZZTIME each (default 2m); `go test` replays their corpora
fuzz:
	scripts/fuzz.sh $(FUZZTIME)

## soak: the full soak against the built binary: 5,000 tunnels with traffic, HTTP load and rule reloads for a minute
soak:
	PORTCULLIS_SOAK=full $(GO) test -count=1 -v -timeout 30m -run '^TestSoak$$' ./e2e/soak/

clean:
	rm -rf bin .build/test.log
