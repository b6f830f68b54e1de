# Static build of the injector on a distroless, non-root base.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd ./cmd
COPY pkg ./pkg
COPY internal ./internal
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/injector ./cmd/injector

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/injector /injector
USER 65532:65532
ENTRYPOINT ["/injector"]
CMD ["serve"]
