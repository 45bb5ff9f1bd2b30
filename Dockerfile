# Atelier: slim, non-root image. The SQLite database lives on the /data volume.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    ATELIER_DATABASE=/data/atelier.sqlite3 \
    ATELIER_CONFIG=/app/config/atelier.toml

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY cogs ./cogs
COPY config/atelier.toml ./config/atelier.toml
RUN pip install . \
    && useradd --create-home --uid 10001 atelier \
    && mkdir -p /data && chown atelier:atelier /data

USER atelier
VOLUME ["/data"]
ENTRYPOINT ["python", "-m", "bot"]
