# reload-butler: multi-stage build, small non-root runtime image.
#   docker build -t reload-butler .
#   docker run -v $PWD/config:/config -v rb-data:/data -e QLIK_API_KEY=... reload-butler
# The daemon reads /config/reload-butler.yaml and keeps its state in /data (see docs/deployment.md).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY templates ./templates
# Built into the binary: the demo's config, and the sample events of `check`, `test-alert` and
# `demo`.
COPY config/demo.yaml ./config/
COPY tests/fixtures/events/app-reload-finished-error.json tests/fixtures/events/webhook-example-body.json ./tests/fixtures/events/
RUN cargo build --release --locked --bin reload-butler

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --home-dir /data reload-butler \
 && mkdir -p /config /data \
 && chown reload-butler /data
COPY --from=build /src/target/release/reload-butler /usr/local/bin/reload-butler
# Stock templates to copy and edit (the same ones are built into the binary).
COPY templates /templates
COPY config/reload-butler.yaml /config/reload-butler.yaml
# Relative paths in the config (config/…, data/…, templates/…) resolve from /.
WORKDIR /
USER reload-butler
VOLUME ["/config", "/data"]
EXPOSE 9090 8443
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
  CMD ["reload-butler", "healthcheck"]
ENTRYPOINT ["reload-butler"]
CMD ["run"]
