"""Every operation of the HTTP API, fed generated requests (schemathesis over the app's own OpenAPI schema,
through the real app and database): none may answer 5xx. Exploring with it found NUL in names and ids past
PostgreSQL's INTEGER (500s), a year-1 date that cannot be converted to UTC (a 500), and a writer lock left
held by a commit on another thread (every later write hung); each has its own test too. This fixed draw
still fails on the old code on PostgreSQL (NUL)."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from sqlalchemy import select

from bot.auth import open_session
from bot.db import session_scope
from bot.models import Staff


def fresh_token(app) -> dict[str, str]:  # noqa: ANN001
    with session_scope(app.state.sessionmaker) as session:
        admin = session.scalars(select(Staff).where(Staff.username == "fuzz-admin")).one()
        token, _actor = open_session(session, admin, kind="token", ip=None, user_agent=None, settings=app.state.settings)
    return {"Authorization": f"Bearer {token}"}


EXAMPLES = 40  # per operation: about 700 requests in all, a few seconds
# The same examples every run (derandomize): CI is never failed by a new draw. Explore by hand with more
# examples and a random seed (edit EXAMPLES, drop derandomize) when the API changes.


def test_no_generated_request_is_a_server_error(app, make_staff) -> None:
    make_staff("fuzz-admin", "admin")
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15  # the whole API, not an empty schema

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                 derandomize=True)
        def no_server_error(case) -> None:  # noqa: ANN001
            response = case.call(headers=fresh_token(app))  # a fuzzed logout revokes only its own
            case.validate_response(response, checks=[not_a_server_error])

        no_server_error()
