# Gongyou service image: slim Python, non-root, `gongyou serve`.
FROM python:3.11-slim

# The image is for deployments: no demo people or 【演示】 events in a real database
# (`docker run -e GONGYOU_DEMO_DATA=true …` to try it out).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    GONGYOU_DATABASE_URL=sqlite:////data/gongyou.db \
    GONGYOU_DEMO_DATA=false

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY scheduler ./scheduler
COPY knowledge ./knowledge
# A wheel install carries knowledge/ inside the package (bot/knowledge), so /app is not needed at run time.
RUN pip install ".[postgres]" \
    && useradd --create-home --uid 10001 gongyou \
    && mkdir -p /data && chown gongyou:gongyou /data

USER gongyou
WORKDIR /data
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')"
CMD ["gongyou", "serve", "--host", "0.0.0.0", "--port", "8000"]
