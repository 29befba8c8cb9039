# syntax=docker/dockerfile:1
# Multi-stage build: compile with the Rust toolchain, run on a slim Debian as a non-root user.

FROM rust:1.95-slim-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends pkg-config libssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so a source change does not rebuild them. The manifest names the bench
# target, so its file must exist for cargo to read the manifest at all.
COPY Cargo.toml Cargo.lock ./
COPY benches benches
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src src
COPY migrations migrations
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin tessera

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/tessera --create-home tessera
COPY --from=build /src/target/release/tessera /usr/local/bin/tessera
WORKDIR /var/lib/tessera
# Read from the working directory like any config/default.toml; `--config FILE` adds another.
COPY config/default.toml /var/lib/tessera/config/default.toml
# The embedded SQLite default keeps its database and master key here (owner-only).
RUN install -d -m 0700 -o tessera -g tessera /var/lib/tessera/data
VOLUME ["/var/lib/tessera/data"]
USER tessera
# Listen on every interface inside the container; publish the port to choose who reaches it.
ENV TESSERA_LISTEN=0.0.0.0:8080 \
    TESSERA_LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["tessera"]
CMD ["serve"]
