# syntax=docker/dockerfile:1
# One image for every role: `freightcast manager | ingest | infer | run | version`. The operator
# starts data-plane pods from its own image, so operator and data plane never skew.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
# Static, reproducible: no cgo, no local paths, version stamped.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X github.com/freightcast/freightcast/internal/version.Version=${VERSION}" \
      -o /out/freightcast ./cmd/freightcast

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/freightcast /freightcast
USER 65532:65532
ENTRYPOINT ["/freightcast"]
