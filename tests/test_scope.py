"""The one scope rule (bot.scope) over each kind of row and each kind of area."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot.auth import Actor, Area
from bot.db import session_scope
from bot.models import Complaint, Handoff, Labourer, TrainingNeed
from bot.scope import covers, scope_where

PLACES = [("平昌县", "白衣镇", "长沙村"), ("平昌县", "白衣镇", "凤凰村"), ("平昌县", "江口镇", "某村"),
          ("巴州区", "曾口镇", "三合村"), (None, None, None)]


def actor(role: str, *areas: Area) -> Actor:
    return Actor(1, f"{role}-x", role, tuple(areas))


CASES = {
    "admin": (actor("admin"), 5),
    "helpdesk for all counties": (actor("helpdesk"), 5),
    "helpdesk for two counties": (actor("helpdesk", Area("平昌县"), Area("巴州区")), 4),
    "county official": (actor("official", Area("平昌县")), 3),
    "township official": (actor("official", Area("平昌县", "白衣镇")), 2),
    "village assistant": (actor("assistant", Area("平昌县", "白衣镇", "长沙村")), 1),
    "official whose account lost its area": (actor("official"), 0),
}


@pytest.fixture
def places(app):  # noqa: ANN001, ANN201
    with session_scope(app.state.sessionmaker) as session:
        for n, (county, township, village) in enumerate(PLACES):
            person = Labourer(name=f"p{n}", county=county, township=township, village=village)
            session.add(person)
            session.flush()
            session.add_all([
                TrainingNeed(labourer_id=person.id, training_type="电焊"),
                Complaint(ticket_no=f"WQ-1-{n}", labourer_id=person.id, channel="sms", user_id=str(n), category="欠薪",
                          employer="e", county=county, township=township),
                Handoff(channel="sms", user_id=str(n), county=county, township=township),
            ])
    return app.state.sessionmaker


@pytest.mark.parametrize("case", CASES)
def test_each_area_sees_only_its_rows(places, case: str) -> None:
    who, expected = CASES[case]
    village_level = who.role == "assistant"
    with places() as session:
        count = lambda model: session.scalar(scope_where(select(func.count()).select_from(model), who, model))  # noqa: E731
        assert count(Labourer) == expected
        assert count(TrainingNeed) == expected  # the lists follow the labourer's registered area
        # complaints and hand-offs have no village: a village-scoped account sees none of them
        assert count(Complaint) == count(Handoff) == (0 if village_level else expected)
        names = session.scalars(scope_where(select(Labourer.name), who, Labourer)).all()
        assert len(names) == expected


def test_a_query_that_names_no_table_is_refused(places) -> None:
    with pytest.raises(TypeError, match="name the model"):
        scope_where(select(func.count()), actor("official", Area("平昌县")))


def test_covers_checks_a_place_against_the_area() -> None:
    township = actor("official", Area("平昌县", "白衣镇"))
    assert covers(township, "平昌县", "白衣镇") and not covers(township, "平昌县", "江口镇")
    assert not covers(township, None) and covers(actor("admin"), None)
