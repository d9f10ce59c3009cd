# syntax=docker/dockerfile:1
#
# ndrbot's image for those who prefer docker build:
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) \
#     --build-arg COMMIT=$(git rev-parse HEAD) \
#     --build-arg DATE=$(git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ) -t ndrbot .
#   docker run --read-only -v ndrbot-data:/var/lib/ndrbot \
#     -v /etc/ndrbot/ndrbot.yaml:/etc/ndrbot/ndrbot.yaml:ro ndrbot
#
# FROM scratch: the static binary (CGO_ENABLED=0; modernc.org/sqlite is pure Go) at
# /ndrbot, /etc/passwd and /etc/group with nonroot (65532), the CA bundle (HTTPS to
# Slack and Microsoft Graph) — no shell, no package manager. It runs as 65532:65532
# and writes only to the volume /var/lib/ndrbot (the SQLite store,
# $XDG_DATA_HOME/ndrbot/ndrbot.db), so --read-only works; the config file is found at
# /etc/ndrbot/ndrbot.yaml ($XDG_CONFIG_HOME/ndrbot/ndrbot.yaml).
#
# This file is not built in CI (no Docker daemon there). `go run ./scripts/image`
# builds the same image without a daemon, and its tests, which CI runs, check that
# image and hold this file's ldflags, user and stages to it (scripts/image/release_test.go).
# The release image comes from .goreleaser.yaml and scripts/image/Dockerfile.release.

ARG GO_VERSION=1.26.8

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG TARGETOS=linux
ARG TARGETARCH=amd64
ARG VERSION=dev
ARG COMMIT=
ARG DATE=
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT} -X main.date=${DATE}" \
      -o /rootfs/ndrbot ./cmd/bot
RUN mkdir -p /rootfs/etc/ssl/certs /rootfs/etc/ndrbot /rootfs/home/nonroot /rootfs/tmp /rootfs/var/lib/ndrbot \
 && cp scripts/image/rootfs/etc/passwd scripts/image/rootfs/etc/group /rootfs/etc/ \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ca-certificates.crt \
 && chown 65532:65532 /rootfs/home/nonroot /rootfs/var/lib/ndrbot \
 && chmod 0700 /rootfs/home/nonroot /rootfs/var/lib/ndrbot \
 && chmod 1777 /rootfs/tmp

FROM scratch
ARG VERSION=dev
ARG COMMIT=
COPY --from=build /rootfs/ /
USER 65532:65532
WORKDIR /var/lib/ndrbot
ENV HOME=/home/nonroot XDG_CONFIG_HOME=/etc XDG_DATA_HOME=/var/lib
VOLUME ["/var/lib/ndrbot"]
LABEL org.opencontainers.image.title="ndrbot" \
      org.opencontainers.image.source="https://github.com/ndrbot/ndrbot" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}"
ENTRYPOINT ["/ndrbot"]
CMD ["serve"]
