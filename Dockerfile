# syntax=docker/dockerfile:1
#
# tollgate container image: a reproducible build (`make release`, i.e.
# `cargo build --release --locked`, the same target CI runs outside Docker)
# on the official Rust image, copied into distroless `cc` (glibc, libgcc,
# CA certificates; no shell, no package manager) running as `nonroot`.
#
#   docker build -t tollgate:0.1.0 .
#   docker run --read-only -p 8080:8080 -p 9090:9090 \
#     -v "$PWD/my-tollgate:/etc/tollgate:ro" tollgate:0.1.0   # tollgate.yaml + keys/
#
# The binary links glibc dynamically: build and runtime are both Debian 12
# (bookworm), so the glibc it needs is the one it runs on. For fully
# reproducible pulls pin both images by digest (@sha256:...) in your registry.

FROM docker.io/library/rust:1.95.0-bookworm AS build
WORKDIR /src
# Sources only (.dockerignore keeps out target/, .git, .venv, keys).
COPY . .
RUN make release \
    && install -D -m 0755 target/release/tollgate /out/tollgate

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="tollgate" \
      org.opencontainers.image.description="Signed-URL and JWT gatekeeper in front of nginx or S3" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/tollgate /tollgate
# The binary writes nothing to disk: run with a read-only root filesystem.
# 65532 is distroless's `nonroot`; numeric, so runAsNonRoot can verify it.
USER 65532:65532
# 8080: proxy; 9090: admin (/metrics, /healthz, /readyz).
EXPOSE 8080 9090
ENTRYPOINT ["/tollgate"]
CMD ["serve", "--config", "/etc/tollgate/tollgate.yaml"]
