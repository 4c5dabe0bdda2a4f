"""What the business errors answer over HTTP: one table, installed once by create_app.

Business code raises NotFound, Forbidden, Conflict (bot.errors), a campaign's TransitionError or an
audience's AudienceError; it never knows about HTTP. Under /console/ the answer is a page, elsewhere JSON.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from bot.errors import Conflict, Forbidden, Invalid, NotFound
from bot.models.complaints import ComplaintTransitionError
from scheduler.audience import AudienceError
from scheduler.campaigns import TransitionError

STATUS: dict[type[Exception], int] = {
    NotFound: 404,
    Forbidden: 403,
    Conflict: 409,
    Invalid: 422,
    TransitionError: 409,
    ComplaintTransitionError: 409,
    AudienceError: 422,
}


def install(app: FastAPI) -> None:
    for error, status in STATUS.items():
        app.add_exception_handler(error, _handler(status))
    app.add_exception_handler(StarletteHTTPException, _http_error)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    # A console page that refuses (403, 404 …) answers with a page; redirects and htmx answers stay as they are.
    if request.url.path.startswith("/console") and exc.status_code >= 400 and not request.headers.get("HX-Request"):
        from bot.console.pages import error_page

        response = error_page(request, exc.status_code)
        response.headers.update(exc.headers or {})
        return response
    return await http_exception_handler(request, exc)


def _handler(status: int):  # noqa: ANN202
    async def answer(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/console"):
            from bot.console.pages import error_page

            return error_page(request, status)
        return JSONResponse({"detail": str(exc)}, status_code=status)

    return answer
