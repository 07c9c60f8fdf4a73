# portcullis and the quickstart's demo app, as static binaries in small
# non-root images. Two targets share one build stage:
#
#   docker build -t portcullis .                        (the default target)
#   docker build --target demo-app -t portcullis-demo-app .
#
# docker-compose.yml at the repository root builds both. Nothing here needs
# a BuildKit frontend, so the classic builder and BuildKit build it alike.
#
# The build stage downloads the Go modules; GOPROXY, when given, is the
# module proxy it asks (a company proxy, or a local one when there is no
# network): docker build --build-arg GOPROXY=<proxy URL> .

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
ARG GOPROXY
RUN go mod download
COPY . .
ARG VERSION=dev
# CGO off: fully static binaries that run on an image with no libc.
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/portcullis-proxy/portcullis/internal/app.version=${VERSION}" \
      -o /out/portcullis ./cmd/portcullis \
 && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/demo-app ./contrib/demo-app

# distroless/static: CA certificates, tzdata and /etc/passwd with the
# nonroot user (65532), no shell and no package manager.
FROM gcr.io/distroless/static-debian12:nonroot AS demo-app
COPY --from=build /out/demo-app /usr/local/bin/demo-app
USER nonroot:nonroot
EXPOSE 4457
ENTRYPOINT ["/usr/local/bin/demo-app"]
CMD ["-listen", ":4457"]

FROM gcr.io/distroless/static-debian12:nonroot AS portcullis
COPY --from=build /out/portcullis /usr/local/bin/portcullis
USER nonroot:nonroot
# proxy, API (decisions, health, rules), Prometheus metrics
EXPOSE 4455 4456 9000
ENTRYPOINT ["/usr/local/bin/portcullis"]
CMD ["serve", "-c", "/etc/config/portcullis/portcullis.yml"]
