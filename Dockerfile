# Static build of the injector on a distroless, non-root base.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd ./cmd
COPY pkg ./pkg
COPY internal ./internal
# `injector version` prints these (docker build --build-arg VERSION=v1.2.3
# --build-arg BUILD_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)); the source is
# copied without .git, so the commit is not recorded otherwise.
ARG VERSION=""
ARG BUILD_DATE=""
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w -X main.version=${VERSION} -X main.buildDate=${BUILD_DATE}" -o /out/injector ./cmd/injector

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/injector /injector
USER 65532:65532
ENTRYPOINT ["/injector"]
CMD ["serve"]
