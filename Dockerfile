# The runner image: one static (musl) binary on an empty base. No shell, no package
# manager, non-root. Build it with `make image`, which compiles the binary on the host
# (cargo build --release --target x86_64-unknown-linux-musl) and passes out/image as the
# build context, so no base image has to be pulled.
# The context holds one binary per architecture (iter8-runner-amd64, iter8-runner-arm64);
# TARGETARCH (set by docker buildx and podman for each platform built) picks it.
FROM scratch
ARG VERSION=0.1.0
ARG TARGETARCH=amd64
LABEL org.opencontainers.image.title="iter8-runner" \
      org.opencontainers.image.description="Iter8 experiment runner (runs the tasks of an experiment, stores the result in the release's Secret)" \
      org.opencontainers.image.source="https://github.com/iter8-rs/iter8" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --chmod=0555 iter8-runner-${TARGETARCH} /iter8-runner
USER 65532:65532
ENTRYPOINT ["/iter8-runner"]
