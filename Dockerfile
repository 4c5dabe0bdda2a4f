# Gongyou service image: slim Python, non-root. One image for every role: `gongyou serve` (the default),
# `gongyou scheduler`, `gongyou dispatch`, `gongyou migrate` (deploy/compose.yaml runs them all).
FROM python:3.11-slim

# The image is for deployments: no demo people or 【演示】 events in a real database
# (`docker run -e GONGYOU_DEMO_DATA=true …` to try it out).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    GONGYOU_DATABASE_URL=sqlite:////data/gongyou.db \
    GONGYOU_CACHE_DIR=/data/cache \
    GONGYOU_DEMO_DATA=false

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY scheduler ./scheduler
COPY knowledge ./knowledge
# A wheel install carries knowledge/ inside the package (bot/knowledge), so /app is not needed at run time.
# The extras: PostgreSQL's driver, and Redis for the shared WeChat access token.
RUN pip install ".[postgres,redis]" \
    && rm -rf /app \
    && useradd --create-home --uid 10001 gongyou \
    && mkdir -p /data/cache && chown -R gongyou:gongyou /data && chmod 0700 /data/cache

USER gongyou
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
# The web role's check; the scheduler and dispatch roles get theirs from the compose file (metrics port).
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')"
CMD ["gongyou", "serve", "--host", "0.0.0.0", "--port", "8000"]
