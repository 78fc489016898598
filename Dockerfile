# ib serve in a container: the embedded default keeps the SQLite database and the key file in the
# /data volume; set IB_DATABASE_URL (PostgreSQL) and IB_SECRET_KEYS to run several replicas.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY providers ./providers
COPY generator ./generator
COPY storage ./storage
RUN pip install . \
    && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home ib \
    && mkdir /data \
    && chown ib:ib /data

ENV IB_DATABASE_URL=sqlite+aiosqlite:////data/ib.db \
    IB_KEY_FILE=/data/ib.key \
    IB_HOST=0.0.0.0 \
    IB_PORT=8080
VOLUME ["/data"]
USER ib
WORKDIR /data
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('IB_PORT', '8080')}/healthz\", timeout=4)"]

CMD ["ib", "serve", "--host", "0.0.0.0"]
