# syntax=docker/dockerfile:1
# tickcast, the gateway: `tickcast serve` as an unprivileged user on port 8000.
#
#   docker build -t tickcast .
#   docker run -p 8000:8000 -e TICKCAST_JWT_SECRET=... tickcast
#
# Settings come from TICKCAST_* variables (docs/configuration.md): the database
# (TICKCAST_DATABASE_URL, a SQLite file in /var/lib/tickcast unless set), the bus
# (TICKCAST_BUS_URL, memory:// = one node), the node's name (TICKCAST_NODE_ID). The
# cluster in deploy/compose.yaml and deploy/k8s/ runs this image.

# -- build: the tickcast wheel, then a virtual environment with it and its dependencies
FROM python:3.12-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# Every dependency ships binary wheels for CPython 3.12 on Linux: no compiler needed.
RUN python -m pip wheel --no-deps --wheel-dir /dist . \
 && python -m venv /opt/tickcast \
 && /opt/tickcast/bin/pip install /dist/tickcast-*.whl

# -- runtime: the virtual environment only (no pip cache, no sources, no build tools)
FROM python:3.12-slim

ENV PATH=/opt/tickcast/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TICKCAST_DATABASE_URL=sqlite+aiosqlite:////var/lib/tickcast/tickcast.db \
    TICKCAST_LOG_FORMAT=json

RUN groupadd --system --gid 10001 tickcast \
 && useradd --system --uid 10001 --gid tickcast --home-dir /var/lib/tickcast \
    --create-home --shell /usr/sbin/nologin tickcast

COPY --from=build /opt/tickcast /opt/tickcast

USER 10001:10001
WORKDIR /var/lib/tickcast
EXPOSE 8000

# `python`, since the slim image has no curl; urlopen raises (exit 1) on a refused
# connection, a timeout or any status other than 2xx.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=3)" "http://127.0.0.1:${TICKCAST_PORT:-8000}/health" || exit 1

# SIGTERM (docker stop, a Kubernetes pod's end) drains: WebSockets are closed with
# 1001 and their clients reconnect to another node; the rest within close_timeout_s.
STOPSIGNAL SIGTERM
CMD ["tickcast", "serve", "--host", "0.0.0.0"]
