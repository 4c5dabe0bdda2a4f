"""Every staff route, from the permission table in tests/staff_routes.py: no login, an expired token or
session, each role, staff of another area, and a console form without its CSRF token."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import update

from bot.auth import open_session
from bot.console.deps import SESSION_COOKIE, signer
from bot.db import session_scope
from bot.models import Staff, StaffSession, utcnow

from staff_routes import ALL, AREA_A, AREA_B, PUBLIC_PREFIXES, STAFF_ROUTES, StaffRoute, seed_world, staff_areas

STAFF_PREFIXES = ("/api/admin", "/api/helpdesk", "/api/auth", "/console")


class Door:
    """Requests as one staff member, each with a fresh token or console session."""

    def __init__(self, app: Any, client: Any, staff: Staff) -> None:
        self.app, self.client, self.staff = app, client, staff

    def credentials(self, *, console: bool, expired: bool = False) -> tuple[dict[str, str], str | None]:
        settings = self.app.state.settings
        with session_scope(self.app.state.sessionmaker) as session:
            staff = session.get(Staff, self.staff.id)
            secret, actor = open_session(session, staff, kind="console" if console else "token", ip="127.0.0.1",
                                         user_agent="pytest", settings=settings)
            if expired:  # a token past its life; a console session idle longer than allowed
                past = utcnow() - timedelta(days=2)
                session.execute(update(StaffSession).where(StaffSession.id == actor.session_id)
                                .values(expires_at=past) if not console else
                                update(StaffSession).where(StaffSession.id == actor.session_id)
                                .values(last_seen_at=past))
        if console:
            return {"Cookie": f"{SESSION_COOKIE}={signer(settings, 'session').sign(secret).decode()}"}, actor.csrf_token
        return {"Authorization": f"Bearer {secret}"}, None

    def call(self, route: StaffRoute, world: dict[str, Any], *, expired: bool = False, csrf: bool = True) -> Any:
        headers, token = self.credentials(console=route.console, expired=expired)
        return send(self.client, route, world, headers, token if csrf else None)


def send(client: Any, route: StaffRoute, world: dict[str, Any], headers: dict[str, str], csrf: str | None) -> Any:
    url = route.url(world)
    if route.console:
        form = dict(route.body or {})
        if route.method == "POST" and csrf:
            form["csrf_token"] = csrf
        return client.request(route.method, url, data=form or None, files=route.files, headers=headers,
                              follow_redirects=False)
    if route.files:
        return client.request(route.method, url, data=route.body, files=route.files,
                              headers={**route.headers, **headers}, follow_redirects=False)
    return client.request(route.method, url, json=route.body, headers={**route.headers, **headers},
                          follow_redirects=False)


@pytest.fixture
def world(app) -> dict[str, Any]:  # noqa: ANN001
    with session_scope(app.state.sessionmaker) as session:
        return seed_world(session, app.state.settings.data_key)


@pytest.fixture
def doors(app, client) -> dict[tuple[str, str], Door]:  # noqa: ANN001
    """(role, "A" | "B") → a staff member of that role in area A or B (admins have no area)."""
    made = {}
    with session_scope(app.state.sessionmaker) as session:
        for role in ALL:
            for name, area in (("A", AREA_A), ("B", AREA_B)):
                if role == "admin" and name == "B":
                    continue
                staff = Staff(username=f"{role}-{name}", password_hash="x", role=role, areas=staff_areas(role, area))
                session.add(staff)
                session.flush()
                made[(role, name)] = staff
    return {key: Door(app, client, staff) for key, staff in made.items()}


def _route_id(route: StaffRoute) -> str:
    return f"{route.method} {route.path} {route.values or ''}".strip()


def _refused_without_login(response: Any, route: StaffRoute) -> bool:
    if route.console:
        return response.status_code == 303 and response.headers["location"].startswith("/console/login")
    return response.status_code == 401


@pytest.mark.parametrize("route", STAFF_ROUTES, ids=_route_id)
def test_staff_route_permissions(route: StaffRoute, client, world, doors) -> None:  # noqa: ANN001
    nobody = send(client, route, world, {}, None)
    assert _refused_without_login(nobody, route), ("no login", nobody.status_code, nobody.text[:200])
    expired = doors[("admin", "A")].call(route, world, expired=True)
    assert _refused_without_login(expired, route), ("expired", expired.status_code, expired.text[:200])

    for role in ALL:
        response = doors[(role, "A")].call(route, world)
        if role in route.roles:
            assert response.status_code in route.ok, (role, response.status_code, response.text[:300])
            if route.area == "list":
                assert route.marker in response.text, (role, "should see its own area's row")
        else:
            assert response.status_code == 403, (role, "may not", response.status_code, response.text[:200])

    if route.area:
        for role in route.roles:
            if role == "admin":
                continue
            response = doors[(role, "B")].call(route, world)
            if route.area == "detail":
                assert response.status_code == 404, (role, "other area", response.status_code, response.text[:200])
            else:
                assert response.status_code == 200 and route.marker not in response.text, (role, "other area")

    if route.console and route.method == "POST":
        response = doors[(route.roles[0], "A")].call(route, world, csrf=False)
        assert response.status_code == 403, ("no CSRF token", response.status_code)


def test_every_staff_route_is_in_the_table(app) -> None:  # noqa: ANN001
    listed = {(r.method, r.path) for r in STAFF_ROUTES}
    missing = [
        (method, route.path)
        for route in app.routes if isinstance(route, APIRoute)
        and route.path.startswith(STAFF_PREFIXES) and not route.path.startswith(PUBLIC_PREFIXES)
        for method in route.methods
        if (method, route.path) not in listed
    ]
    assert missing == [], "add these routes to tests/staff_routes.py"
