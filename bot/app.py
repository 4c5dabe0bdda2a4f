"""The ASGI application: `bot.app:app` (built on first access) and `create_app()`; and `compose()`, the one
place the message pipeline is assembled (every process that answers messages or sends uses it)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import Message, Receive, Scope, Send

from bot import metrics

from bot.api import errors
from bot.api.limits import BodyLimit
from bot.api.routes import audit, auth, campaigns, events, helpdesk, knowledge, labourers, nlu, staff
from bot.api.routes import roster
from bot.api.routes import metrics as metrics_route
from bot.console import campaigns as console_campaigns
from bot.console import helpdesk as console_helpdesk
from bot.console import knowledge as console_knowledge
from bot.console import pages as console_pages
from bot.console import dashboard as console_dashboard
from bot.console import labourers as console_labourers
from bot.console import lists as console_lists
from bot.console import roster as console_roster
from bot.channels import simulator, sms, wechat
from bot.conversation import Services
from bot.db import make_engine, make_sessionmaker, migrate
from bot.logs import HEADER as REQUEST_ID_HEADER
from bot.logs import configure_logging, new_request_id, request_id
from bot.overload import Admission
from bot.settings import Settings, get_settings

from bot.snapshot import KnowledgeStore

if TYPE_CHECKING:
    from scheduler.jobs import CampaignScheduler
    from scheduler.senders import Sender

log = logging.getLogger(__name__)


class GongyouApp(FastAPI):
    """FastAPI, except that WeChat's callback (POST /wechat), the one path every message of the Official
    Account takes, goes straight to its handler: FastAPI's middleware, routing and dependency layers cost
    more CPU than the handler's own HTTP work, and the callback needs none of them (it answers every
    error itself). The route stays registered on the router too, for the OpenAPI schema.

    Every HTTP request also gets its request id here (bot.logs: the proxy's X-Request-ID or a new one, set
    for the request's logs and returned in the response), and the providers' callbacks are timed
    (gongyou_webhook_seconds)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        offered = next((v for k, v in scope["headers"] if k == REQUEST_ID_HEADER.encode()), b"")
        rid = new_request_id(offered.decode("latin-1"))
        reset = request_id.set(rid)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (REQUEST_ID_HEADER.encode(), rid.encode())]
            await send(message)

        path = _route_path(scope)
        try:
            if scope["method"] == "POST" and path == "/wechat":
                scope["app"] = self
                try:
                    response = await wechat.callback(Request(scope, receive))
                except Exception:  # what ServerErrorMiddleware would do: log it, answer 500
                    log.exception("wechat callback failed")
                    response = PlainTextResponse("Internal Server Error", status_code=500)
                await response(scope, receive, send_with_id)
            else:
                await super().__call__(scope, receive, send_with_id)
        finally:
            if scope["method"] == "POST":
                metrics.process_metrics().observe_webhook(path, status, time.perf_counter() - started)
            request_id.reset(reset)


def _route_path(scope: Scope) -> str:
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


def compose(settings: Settings, factory: sessionmaker[Session]) -> Services:
    """The pipeline, assembled from explicit lists: intent handlers, dialogs, the hook that answers replies
    to broadcasts, what each channel records per message, the one table of broadcast senders per channel,
    and the observer that counts messages and sends (this process's metrics). Nothing registers itself on
    import; Services.build checks that the parts fit. Delivery receipts need no listener: they settle the
    outbox row, which broadcast deliveries and desk messages point at and read."""
    from bot import helpdesk, signups
    from bot.dialogs import signup
    from bot.dialogs.definitions import DIALOGS
    from bot.intents import events, handoff, menu, policy, records, registration, subscription
    from bot.nlu.entities import use_cache_dir
    from scheduler.senders import CHANNEL_SENDERS

    use_cache_dir(settings.resolved_cache_dir)
    return Services.build(
        settings, factory,
        handlers=(menu.HANDLERS, policy.HANDLERS, registration.HANDLERS, events.HANDLERS, records.HANDLERS,
                  subscription.HANDLERS, handoff.HANDLERS),
        dialogs=DIALOGS,
        pre_route=(helpdesk.labourer_message, signups.broadcast_reply, signup.after_events_list,
                   records.change_stated, registration.registration_stated),
        on_logged={"wechat": wechat.touch_follower},
        observer=metrics.process_metrics(),
        senders=CHANNEL_SENDERS,
    )


def dispatch_parts(settings: Settings, factory: sessionmaker[Session], *, spec: str = "",
                   services: Services | None = None) -> tuple[dict[str, Sender], KnowledgeStore]:
    """What a dispatcher runs on (`gongyou dispatch`, the scheduler's own, the web process's): the senders
    and the knowledge snapshot its texts come from.

    By default both are the process's composed services' (`services`, or composed here once: the web
    process passes its own, so it has one table of senders and one snapshot). `spec` ("module:callable",
    GONGYOU_DISPATCH_SENDERS or --senders) replaces the senders (tests' loopback gateways, benchmarks);
    such a worker answers no message, so it reads the knowledge without composing the pipeline."""
    import importlib

    from scheduler.render import knowledge_for

    if spec:
        module, _, name = spec.partition(":")
        make = getattr(importlib.import_module(module), name)
        return make(settings, factory), knowledge_for(factory, settings.knowledge_dir, settings.knowledge_poll_seconds)
    services = services or compose(settings, factory)
    return dict(services.senders), services.knowledge


def campaign_scheduler(settings: Settings, engine: Engine, factory: sessionmaker[Session], *,
                       services: Services | None = None) -> CampaignScheduler:
    """The schedule runner (`gongyou scheduler`, or inside the web process with GONGYOU_SCHEDULER_ENABLED),
    and the dispatcher it runs beside it when asked (`--with-dispatcher`), built from `dispatch_parts`."""
    from scheduler.dispatch import DispatchConfig, Dispatcher
    from scheduler.jobs import CampaignScheduler

    def dispatcher() -> Dispatcher:
        senders, knowledge = dispatch_parts(settings, factory, spec=settings.dispatch_senders, services=services)
        return Dispatcher(factory, senders, DispatchConfig.from_settings(settings), clock=scheduler.clock,
                          knowledge=knowledge)

    scheduler = CampaignScheduler(settings, engine, factory, dispatcher_factory=dispatcher)
    return scheduler


def metric_sources(engine: Engine) -> list[metrics.DatabaseFigures]:
    """What GET /metrics reads from the shared database at scrape time (the same in every worker)."""
    from scheduler.jobs import LEADER_KEY

    return [metrics.DatabaseFigures(engine, (metrics.queue_figures, metrics.leader_figures(LEADER_KEY),
                                             metrics.sla_breaches))]


def create_app(settings: Settings | None = None, *, configure_logs: bool = True) -> FastAPI:
    settings = settings or get_settings()
    if configure_logs:
        configure_logging(settings.log_level, settings.log_json)
    engine = make_engine(settings.database_url)
    migrate(engine)
    metrics.process_metrics().watch_pool(engine, "web")
    factory = make_sessionmaker(engine)
    services = compose(settings, factory)
    if settings.demo_data:
        from bot.demo import load_demo_data

        load_demo_data(services)

    @asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[None]:
        stop_watching = services.knowledge.watch(settings.knowledge_poll_seconds) \
            if settings.knowledge_poll_seconds > 0 else None
        watching_loop = asyncio.create_task(application.state.admission.watch_loop())
        # GONGYOU_SCHEDULER_ENABLED: this process also runs the schedules (when it wins leadership) and a
        # dispatcher on its own senders and snapshot — the embedded one-process default.
        scheduler = campaign_scheduler(settings, engine, factory, services=services) \
            if settings.scheduler_enabled else None
        if scheduler is not None:
            scheduler.start(with_dispatcher=True)
        application.state.campaign_scheduler = scheduler
        try:
            yield
        finally:
            application.state.campaign_scheduler = None
            if scheduler is not None:
                scheduler.shutdown()
            watching_loop.cancel()
            if stop_watching is not None:
                stop_watching()

    app = GongyouApp(title="Gongyou 工友", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = factory
    app.state.services = services
    app.state.metric_sources = metric_sources(engine)
    app.state.admission = Admission.from_settings(settings)  # POST /wechat above capacity (bot/overload.py)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # Clear 4xx for malformed bodies; never echo huge inputs back (FastAPI's documented shape, without `input`).
        errors = [{"loc": e.get("loc"), "msg": e.get("msg"), "type": e.get("type")} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.get("/health")
    def health() -> dict[str, Any]:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        knowledge = services.knowledge
        return {"status": "ok", "database": engine.dialect.name, "knowledge_entries": len(knowledge.current.kb.entries),
                "knowledge_version": knowledge.current.version, "knowledge_error": knowledge.last_error}

    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes, max_upload_bytes=settings.max_upload_bytes)
    errors.install(app)
    app.include_router(nlu.router)
    if settings.simulator:  # development only, unless GONGYOU_SIMULATOR turns it on
        app.include_router(simulator.router)
    app.include_router(wechat.router)
    app.include_router(sms.router)
    app.include_router(auth.router)
    app.include_router(events.router)
    app.include_router(campaigns.router)
    app.include_router(labourers.router)
    app.include_router(roster.router)
    app.include_router(helpdesk.router)
    app.include_router(staff.router)
    app.include_router(audit.router)
    app.include_router(knowledge.router)
    app.include_router(metrics_route.router)
    app.include_router(console_pages.router)
    app.include_router(console_knowledge.router)
    app.include_router(console_campaigns.router)
    app.include_router(console_roster.router)
    app.include_router(console_labourers.router)
    app.include_router(console_lists.router)
    app.include_router(console_dashboard.router)
    app.include_router(console_helpdesk.router)
    app.mount("/console/static", console_pages.static_files(), name="console-static")
    log.info("app ready", extra={"database": engine.dialect.name, "entries": len(services.kb.entries)})
    return app


def __getattr__(name: str) -> Any:
    # `uvicorn bot.app:app` reads this attribute; building on first access keeps `import bot.app` free of I/O.
    if name == "app":
        global app
        app = create_app()
        return app
    raise AttributeError(name)
