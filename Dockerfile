# reload-butler: multi-stage build, small non-root runtime image. One image, two roles:
#   docker build -t reload-butler .
#   docker run -d -v rb-data:/data -p 127.0.0.1:9090:9090 \
#     -e MQTT_URL -e QLIK_TENANT_ID -e QLIK_TENANT_URL -e QLIK_API_KEY -e SLACK_WEBHOOK_URL -e ADMIN_TOKEN \
#     reload-butler                                            # the daemon: /config/reload-butler.yaml
#   docker run -d -p 8080:8080 -e MQTT_URL -e QLIK_WEBHOOK_SECRET \
#     -e RELOAD_BUTLER_CONFIG=/config/gateway.yaml reload-butler gateway   # the gateway
# Each shipped config needs exactly the variables above (their headers list them); mount your
# own over /config/reload-butler.yaml for more. State lives in /data, owned by uid 10001.
# docs/deployment.md has the details.
#
# Base images: pin them by digest for reproducible builds, e.g.
#   docker build --build-arg RUST_IMAGE=rust:1.95.0-bookworm@sha256:<digest> \
#                --build-arg RUNTIME_IMAGE=debian:bookworm-slim@sha256:<digest> .
# (`docker buildx imagetools inspect debian:bookworm-slim` prints the current digest.)
ARG RUST_IMAGE=rust:1.95.0-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# The dependencies in a layer of their own, rebuilt only when Cargo.toml or Cargo.lock change:
# built once against a stub crate, whose own artifacts are then removed.
COPY Cargo.toml Cargo.lock ./
COPY benches ./benches
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && cargo build --release --locked --bin reload-butler \
 && rm -rf src target/release/reload-butler* target/release/deps/reload_butler* \
           target/release/deps/libreload_butler* target/release/.fingerprint/reload-butler-*
COPY src ./src
COPY templates ./templates
# build.rs links the functions in the order link/symbol-order.txt lists (docs/performance.md,
# seventh round); the list's names match the Rust release it was made with, pinned above.
COPY build.rs ./
COPY link ./link
# Built into the binary: the demo's config, and the sample events of `check`, `test-alert` and
# `demo`.
COPY config/demo.yaml ./config/
COPY tests/fixtures/events/app-reload-finished-error.json tests/fixtures/events/automation-run-ended-failed.json tests/fixtures/events/webhook-example-body.json ./tests/fixtures/events/
RUN cargo build --release --locked --bin reload-butler

FROM ${RUNTIME_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --home-dir /data reload-butler \
 && mkdir -p /config /data \
 && chown reload-butler /data
COPY --from=build /src/target/release/reload-butler /usr/local/bin/reload-butler
# Stock templates to copy and edit (the same ones are built into the binary).
COPY templates /templates
COPY config/container.yaml /config/reload-butler.yaml
COPY config/gateway-container.yaml /config/gateway.yaml
# Relative paths in the config (config/…, data/…, templates/…) resolve from /.
WORKDIR /
USER 10001
VOLUME ["/data"]
# 9090: the daemon's admin endpoint; 8080: the gateway.
EXPOSE 9090 8080
# Healthy when the daemon's admin endpoint or the gateway answers /healthz: one check for both
# roles, reading the config RELOAD_BUTLER_CONFIG names (as the main process does).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
  CMD ["reload-butler", "healthcheck", "--of", "any"]
ENTRYPOINT ["reload-butler"]
CMD ["run"]
