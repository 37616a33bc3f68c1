# syntax=docker/dockerfile:1
# Multi-stage build: compile in the Rust image, run as a non-root user in a
# slim Debian image holding only the binary and the default config.
#   docker build -t marketprism/message-broker .
#   docker compose -f docker-compose.nats.yml --profile gateway up -d --build

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked --bin message-broker \
    && rm -rf src target/release/deps/message_broker* target/release/.fingerprint/message-broker*
# Compiled into the binary: the console's files, and the payloads behind the
# OpenAPI document's request examples.
COPY console ./console
COPY tests/fixtures/payloads ./tests/fixtures/payloads
COPY src ./src
RUN cargo build --release --locked --bin message-broker

FROM debian:bookworm-slim AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin broker
COPY --from=build /src/target/release/message-broker /usr/local/bin/message-broker
COPY config/unified_message_broker.yaml /etc/marketprism/unified_message_broker.yaml
USER 10001:10001
EXPOSE 8086
# The binary probes itself: the image has no curl or wget.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["message-broker", "probe", "http://127.0.0.1:8086/healthz"]
ENTRYPOINT ["message-broker", "-c", "/etc/marketprism/unified_message_broker.yaml"]
