# syntax=docker/dockerfile:1
#
# One image with all three Switchyard binaries: switchyard-proxy, switchyard-operator and
# kubectl-switchyard. The Helm chart runs it with an explicit command per Deployment.
#
#   docker build -t ghcr.io/switchyard-dev/switchyard:0.1.0 .
#
# The runtime is distroless (glibc, CA certificates, no shell, no package manager) and runs as
# the non-root user 65532; the proxy listens on 8080/8443, so it needs no capability.

ARG RUST_VERSION=1.89

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# Registry, git checkouts and target/ are BuildKit cache mounts: rebuilds reuse compiled
# dependencies. The binaries are copied out of the cached target/ in the same step, since a
# cache mount is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p switchyard-proxy -p switchyard-operator \
 && mkdir -p /out \
 && cp target/release/switchyard-proxy \
       target/release/switchyard-operator \
       target/release/kubectl-switchyard \
       /out/

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="switchyard" \
      org.opencontainers.image.description="Switchyard: Kubernetes ingress controller (switchyard-proxy), operator (switchyard-operator) and kubectl plugin" \
      org.opencontainers.image.source="https://github.com/switchyard-dev/switchyard" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/switchyard-proxy /out/switchyard-operator /out/kubectl-switchyard /usr/local/bin/
USER 65532:65532
EXPOSE 8080 8443 10254
ENTRYPOINT ["/usr/local/bin/switchyard-proxy"]
