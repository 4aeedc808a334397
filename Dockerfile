# syntax=docker/dockerfile:1
# The one `causeway` binary (controller, proxy, standalone, crds, validate) in a small
# non-root image. Build: docker build -t causeway:dev .
ARG RUST_VERSION=1.95.0

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p causeway \
    && cp target/release/causeway /causeway

# distroless/cc: glibc + CA certificates, no shell; "nonroot" is uid/gid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /causeway /usr/local/bin/causeway
USER 65532:65532
ENV CAUSEWAY_LOG_FORMAT=json
# proxy traffic, proxy admin, controller snapshot server, controller admin
EXPOSE 8080 9901 18000 9902
ENTRYPOINT ["/usr/local/bin/causeway"]
CMD ["--help"]
