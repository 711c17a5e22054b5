# Manifold, the MCP gateway, as a container image. See docs/deployment.md#docker-image.
#
#   docker build -t manifold .
#   docker run --rm --read-only -p 8080:8080 manifold
#
# Both base images are build arguments, so the image can be built from local or mirrored
# bases (scripts/docker builds it with bases made by debootstrap, without any registry):
#   BUILD_IMAGE    a Rust toolchain (1.88 or later) with a C compiler, on glibc;
#   RUNTIME_IMAGE  where the binary runs: glibc, CA certificates. Distroless by default (no
#                  shell, runs as uid 65532).
# Crates come from .cargo-vendor/crates when the build context holds them (cargo vendor, see
# .cargo-vendor/README.md), so the build needs no network; otherwise from crates.io.
ARG BUILD_IMAGE=rust:1.88-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
# Sources first, own layer: they change less often than the code.
COPY .cargo-vendor/ .cargo-vendor/
COPY Cargo.toml Cargo.lock ./
COPY benches/ benches/
COPY src/ src/
# With vendored crates, point crates.io at them (the path is absolute, so the fragment holds
# wherever Cargo reads it from).
RUN if [ -n "$(ls -A .cargo-vendor/crates 2>/dev/null)" ]; then \
        mkdir -p .cargo \
        && printf '%s\n' '[source.crates-io]' 'replace-with = "vendored"' \
            '[source.vendored]' 'directory = "/src/.cargo-vendor/crates"' > .cargo/config.toml \
        && echo "Building from vendored crates"; \
    fi \
    && cargo build --release --locked --bin manifold \
    && install -D -m 0755 target/release/manifold /out/manifold \
    && rm -rf target

FROM ${RUNTIME_IMAGE}
COPY --from=build /out/manifold /usr/local/bin/manifold
COPY docker/gateway.yaml /etc/manifold/gateway.yaml
# Read by `manifold serve`, `check` and `tools`; mount another file here, or set it elsewhere.
ENV MANIFOLD_CONFIG=/etc/manifold/gateway.yaml
# Numeric, so it holds on bases without a passwd entry for it (distroless's nonroot is 65532).
USER 65532:65532
EXPOSE 8080
# manifold is PID 1: it handles SIGTERM (drains, then exits 0) and reaps orphaned processes
# that stdio upstreams leave behind, so no init wrapper is needed.
ENTRYPOINT ["/usr/local/bin/manifold"]
CMD ["serve"]
