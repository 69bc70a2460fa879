# Spyglass and the demo services in one image (docker-compose.yml runs each process in a
# container of its own from it). Three stages: htmx from npm as `make setup` gets it, the
# Python environment, and a slim runtime that runs as an unprivileged user.

# -- htmx: npm installs package.json's pinned htmx.org; its postinstall copies it into static/vendor
FROM node:22.20.0-bookworm-slim AS static
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error

# -- Python: a virtual environment with Spyglass installed from /app (editable, so the
# templates, static files and migrations are read where they are)
FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /app
COPY pyproject.toml README.md ./
COPY app ./app
COPY collectors ./collectors
COPY demo_services ./demo_services
COPY templates ./templates
COPY static ./static
RUN /opt/venv/bin/pip install --quiet -e .
COPY --from=static /src/static/vendor/htmx.min.js ./static/vendor/htmx.min.js

# -- runtime
FROM python:3.11.14-slim-bookworm AS runtime
RUN groupadd --system --gid 10001 spyglass \
 && useradd --system --uid 10001 --gid spyglass --home-dir /var/lib/spyglass --shell /usr/sbin/nologin spyglass \
 && install -d -o spyglass -g spyglass -m 0700 /var/lib/spyglass
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
USER spyglass
VOLUME ["/var/lib/spyglass"]
# OTLP/HTTP (and Zipkin v2 JSON), OTLP/gRPC, the dashboard and the JSON API
EXPOSE 4318 4317 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=2)"]
# Listening beyond loopback: SPYGLASS_AUTH_TOKEN must be set (spyglass serve refuses otherwise).
CMD ["spyglass", "serve", "--ui-addr", "0.0.0.0:8080", "--otlp-http-addr", "0.0.0.0:4318", "--data-dir", "/var/lib/spyglass"]
