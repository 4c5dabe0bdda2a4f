"""The ASGI application: `bot.app:app` (built on first access) and `create_app()`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text

from bot.api import admin, nlu
from bot.channels import simulator, sms, wechat
from bot.conversation import Services
from bot.db import make_engine, make_sessionmaker, migrate
from bot.logs import configure_logging
from bot.settings import Settings, get_settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, configure_logs: bool = True) -> FastAPI:
    settings = settings or get_settings()
    if configure_logs:
        configure_logging(settings.log_level, settings.log_json)
    engine = make_engine(settings.database_url)
    migrate(engine)
    factory = make_sessionmaker(engine)
    services = Services.build(settings, factory)
    if settings.demo_data:
        from bot.demo import load_demo_data

        load_demo_data(services)

    from scheduler.jobs import lifespan as scheduler_lifespan  # runs schedules in-process when enabled

    app = FastAPI(title="Gongyou 工友", version="0.1.0", lifespan=scheduler_lifespan)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = factory
    app.state.services = services

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # Clear 4xx for malformed bodies; never echo huge inputs back.
        errors = [{"loc": e.get("loc"), "msg": e.get("msg")} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.get("/health")
    def health() -> dict[str, Any]:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok", "database": engine.dialect.name, "knowledge_entries": len(services.kb.entries)}

    app.include_router(nlu.router)
    app.include_router(simulator.router)
    app.include_router(wechat.router)
    app.include_router(sms.router)
    app.include_router(admin.router)
    log.info("app ready", extra={"database": engine.dialect.name, "entries": len(services.kb.entries)})
    return app


def __getattr__(name: str) -> Any:
    # `uvicorn bot.app:app` reads this attribute; building on first access keeps `import bot.app` free of I/O.
    if name == "app":
        global app
        app = create_app()
        return app
    raise AttributeError(name)
