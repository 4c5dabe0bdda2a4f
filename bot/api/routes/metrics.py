"""GET /metrics — Prometheus text format, for a Prometheus server holding GONGYOU_METRICS_TOKEN.

Protected by its own bearer token (Prometheus' `authorization: {credentials: …}`), not a staff login: a
scraper cannot sign in, and a staff token expires. With no token configured the route answers 404, so a
deployment never exposes its figures by omission."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from bot import metrics

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
def scrape(request: Request) -> Response:
    token = request.app.state.settings.metrics_token
    if not token:
        return JSONResponse({"detail": "metrics are off: set GONGYOU_METRICS_TOKEN"}, status_code=404)
    offered = request.headers.get("authorization", "")
    scheme, _, credentials = offered.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(credentials.strip().encode(), token.encode()):
        return JSONResponse({"detail": "metrics need Authorization: Bearer <GONGYOU_METRICS_TOKEN>"}, status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})
    body = metrics.process_metrics().exposition(request.app.state.metric_sources)
    return Response(body, media_type=metrics.CONTENT_TYPE)
