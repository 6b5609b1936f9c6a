# syntax=docker/dockerfile:1
#
# bi-agent container image.
#   docker build -t bi-agent .
#   docker run -d --name bi-agent \
#     -v bi-agent-memory:/var/lib/bi-agent \
#     -v $PWD/agent.toml:/etc/bi-agent/agent.toml:ro \
#     --env-file bi-agent.env bi-agent
# Run exactly one replica per memory volume: two would notify twice.

FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the registry and compiled dependencies between builds;
# the binary is copied out because the target directory is a mount.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin bi-agent \
    && cp target/release/bi-agent /usr/local/bin/bi-agent

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 bi-agent \
    && useradd --system --uid 10001 --gid bi-agent --home-dir /var/lib/bi-agent --shell /usr/sbin/nologin bi-agent \
    && mkdir -p /var/lib/bi-agent /etc/bi-agent \
    && chown bi-agent:bi-agent /var/lib/bi-agent
COPY --from=build /usr/local/bin/bi-agent /usr/local/bin/bi-agent
COPY config/example.toml /etc/bi-agent/agent.toml
USER bi-agent:bi-agent
WORKDIR /var/lib/bi-agent
VOLUME ["/var/lib/bi-agent"]
ENV BI_AGENT_CONFIG=/etc/bi-agent/agent.toml
# `docker stop` sends SIGTERM and waits 10 s: the agent's shutdown_grace (8 s) fits inside.
STOPSIGNAL SIGTERM
# Healthy while cycles keep finishing: asks /readyz when [server] is
# configured, else reads the last cycle's age from memory (read-only).
# start-period covers migrations and the first cycle; the check itself
# allows 2 × agent.interval + 30 s, so the probe interval need not follow it.
HEALTHCHECK --interval=30s --timeout=10s --start-period=1m --retries=3 \
    CMD ["/usr/local/bin/bi-agent", "health"]
ENTRYPOINT ["/usr/local/bin/bi-agent"]
CMD ["run"]
