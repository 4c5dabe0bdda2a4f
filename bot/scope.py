"""The one scope rule: what part of the city a staff member may see, applied to every staff query.

`scope_where(query, actor)` adds the actor's area to a SELECT over labourers, the five lists, complaints,
hand-offs, events or campaigns — lists, counts, exports and look-ups alike. `get_scoped` opens one row by
id and raises NotFound for a row outside the area exactly as for a row that does not exist.

Rules. Admins, and help-desk members with no county, see everything. Anyone else sees only rows whose area
lies inside one of theirs: a township official the township, a county official or help-desk member the
county, a village assistant the village. A row with no area (a complaint from someone the registry does
not know, an event an admin made for the whole city) is seen only by those who see everything. Tables
without a village column (complaints, hand-offs, events, campaigns) are not visible to a village-scoped
account. An official or assistant whose account carries no area sees nothing: a damaged row never
widens what someone sees.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, and_, false, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from bot.auth import Actor, Area
from bot.errors import Invalid, NotFound
from bot.models import (
    Campaign,
    Complaint,
    Delivery,
    Event,
    Handoff,
    JobWish,
    Labourer,
    SignUp,
    Ticket,
    TrainingNeed,
    WorkingAway,
)

T = TypeVar("T")
Columns = tuple[InstrumentedAttribute[Any], InstrumentedAttribute[Any], InstrumentedAttribute[Any] | None]

# How a row of each table says where it belongs: (county, township, village or None).
AREA_COLUMNS: dict[type, Columns] = {
    Labourer: (Labourer.county, Labourer.township, Labourer.village),
    Complaint: (Complaint.county, Complaint.township, None),
    Handoff: (Handoff.county, Handoff.township, None),
    Ticket: (Ticket.county, Ticket.township, None),
    Event: (Event.owner_county, Event.owner_township, None),
    Campaign: (Campaign.owner_county, Campaign.owner_township, None),
}
# Rows about one labourer belong where the labourer is registered.
VIA_LABOURER: tuple[type, ...] = (TrainingNeed, JobWish, WorkingAway, SignUp, Delivery)
UNSCOPED_ROLES = ("admin", "helpdesk")  # with no area: everywhere


def visible_areas(actor: Actor) -> tuple[Area, ...] | None:
    """The actor's areas, or None for everywhere."""
    if actor.role == "admin" or (actor.role == "helpdesk" and not actor.areas):
        return None
    return actor.areas


def area_condition(model: type, areas: tuple[Area, ...]) -> ColumnElement[bool]:
    if model in VIA_LABOURER:
        return model.labourer_id.in_(select(Labourer.id).where(area_condition(Labourer, areas)))  # type: ignore[attr-defined]
    if model not in AREA_COLUMNS:
        raise TypeError(f"{model.__name__} has no area rule: add it to bot.scope.AREA_COLUMNS or VIA_LABOURER")
    county, township, village = AREA_COLUMNS[model]
    each = []
    for area in areas:
        if area.village and village is None:
            continue
        conds = [county == area.county]
        if area.township:
            conds.append(township == area.township)
        if area.village and village is not None:
            conds.append(village == area.village)
        each.append(and_(*conds))
    return or_(*each) if each else false()


def scope_where(query: Select[Any], actor: Actor, model: type | None = None) -> Select[Any]:
    """`query` restricted to the actor's area. `model` is the table whose area counts; by default the
    query's first selected entity (name it when the query starts with a column of a joined table)."""
    areas = visible_areas(actor)
    if areas is None:
        return query
    if model is None:
        model = query.column_descriptions[0].get("entity")
        if model is None:  # select(func.count()) and the like: which table's area counts is not guessed
            raise TypeError("scope_where: name the model for a query that does not start with one")
    return query.where(area_condition(model, areas))


def get_scoped(session: Session, model: type[T], row_id: int, actor: Actor, *, lock: bool = False) -> T:
    """One row by id, or NotFound — also for a row that exists outside the actor's area."""
    query = scope_where(select(model).where(model.id == row_id), actor)  # type: ignore[attr-defined]
    row = session.scalars(query.with_for_update() if lock else query).one_or_none()
    if row is None:
        raise NotFound(f"no such {model.__tablename__}")  # type: ignore[attr-defined]
    return row


def covers(actor: Actor, county: str | None, township: str | None = None, village: str | None = None) -> bool:
    """Whether a place (as a row would carry it) lies inside the actor's area: for checking what they write."""
    areas = visible_areas(actor)
    if areas is None:
        return True
    return any(
        county == a.county and (a.township is None or township == a.township)
        and (a.village is None or village == a.village)
        for a in areas
    )


def owner_area(actor: Actor) -> tuple[str | None, str | None]:
    """The (county, township) stamped on what the actor creates: their own area when they have exactly one."""
    areas = visible_areas(actor)
    if not areas or len(areas) != 1:
        return None, None
    return areas[0].county, areas[0].township


def scoped_filter(actor: Actor, spec: dict[str, Any]) -> dict[str, Any]:
    """An audience filter narrowed to the actor's area: the area's county/township/village are added, and a
    filter naming a place outside it is refused (Invalid). Used for broadcasts a scoped official builds."""
    areas = visible_areas(actor)
    if areas is None:
        return spec
    if len(areas) != 1:
        raise Invalid("an audience must lie in one area; name it with county/township")
    area = areas[0]
    narrowed = dict(spec)
    for key, mine in (("county", area.county), ("township", area.township), ("village", area.village)):
        if mine is None:
            continue
        asked = narrowed.get(key)
        values = [asked] if isinstance(asked, str) else list(asked or [])
        outside = [v for v in values if v != mine]
        if outside:
            raise Invalid(f"{key}: {', '.join(map(str, outside))} is outside your area ({area.label})")
        narrowed[key] = [mine]
    return narrowed
