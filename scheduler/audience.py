"""Audiences: a saved filter over the registry and the five lists (一库五名单), resolved to SQL when a step
fires — never to a list of people at the time it was written.

Filter keys (all optional, combined with AND; a list value means "any of"):
  county, township, village         region
  lists                             training_need | job_wish | working_away | startup | public_welfare_post (any of)
  training_types                    an open training need of one of these types
  job_types, job_places             an open job wish of one of these types / places (place or place scope)
  employment_status, household_status, gender ("M" | "F")
  age_min, age_max                  whole years on the day the step fires
  channel                           wechat | sms | any — reachable on that channel (address known)
  subscribed                        true: only people who have not unsubscribed from that channel
Then include_ids are added and exclude_ids removed.

An id list goes to the database as one bound parameter (a JSON array unpacked by the database), whatever
its length: one parameter per id would stop at PostgreSQL's 65,535 bind parameters and SQLite's 250,000.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date
from typing import Any

from sqlalchemy import Boolean, ColumnElement, Select, String, and_, exists, literal, not_, or_, select, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from bot.channels.policy import ADDRESS_FIELDS
from bot.validation import has_control_chars
from bot.models import Audience, JobWish, Labourer, TrainingNeed, WorkingAway

LISTS = ("training_need", "job_wish", "working_away", "startup", "public_welfare_post")
CHANNELS = ("wechat", "sms")
_LIST_KEYS = ("county", "township", "village", "lists", "training_types", "job_types", "job_places",
              "employment_status", "household_status")
KNOWN_KEYS = frozenset({*_LIST_KEYS, "gender", "age_min", "age_max", "channel", "subscribed"})


# The region, list and catalogue values a filter can name are a few thousand at most (knowledge/); a longer
# list is a mistake, and one bound parameter per value must stay far below the databases' limits.
MAX_VALUES = 2000
MAX_VALUE_CHARS = 64


class AudienceError(ValueError):
    pass


def validate_filter(raw: dict[str, Any]) -> dict[str, Any]:
    """Normalise a filter (strings → one-element lists) and refuse what it cannot mean."""
    unknown = set(raw) - KNOWN_KEYS
    if unknown:
        raise AudienceError(f"unknown audience filter keys: {sorted(unknown)}")
    clean: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None or value == [] or value == "":
            continue
        if key in _LIST_KEYS:
            if not isinstance(value, (str, list, tuple)):
                raise AudienceError(f"{key}: expected a text or a list of texts")
            values = [value] if isinstance(value, str) else list(value)
            if len(values) > MAX_VALUES:
                raise AudienceError(f"{key}: at most {MAX_VALUES} values")
            if not all(isinstance(v, str) and v and len(v) <= MAX_VALUE_CHARS and not has_control_chars(v)
                       for v in values):
                raise AudienceError(f"{key}: expected text values of at most {MAX_VALUE_CHARS} characters")
            clean[key] = values
        elif key in ("age_min", "age_max"):
            # JSON true is not a number of years (Python's bool is an int)
            if type(value) is not int or not 0 <= value <= 120:
                raise AudienceError(f"{key}: expected whole years 0–120")
            clean[key] = value
        elif key == "gender":
            if value not in ("M", "F"):
                raise AudienceError("gender: expected M or F")
            clean[key] = value
        elif key == "channel":
            if value not in (*CHANNELS, "any"):
                raise AudienceError("channel: expected wechat, sms or any")
            clean[key] = value
        elif key == "subscribed":
            if not isinstance(value, bool):  # "false" is a text, and bool("false") is True
                raise AudienceError("subscribed: expected true or false")
            clean[key] = value
    bad_lists = set(clean.get("lists", ())) - set(LISTS)
    if bad_lists:
        raise AudienceError(f"lists: unknown {sorted(bad_lists)}; known {list(LISTS)}")
    if clean.get("age_min", 0) > clean.get("age_max", 120):
        raise AudienceError("age_min is above age_max")
    return clean


def reachable(channel: str) -> ColumnElement[bool]:
    """Has an address on the channel and has not unsubscribed from it: bot.channels.policy.reachable as SQL,
    read from the same fields (policy.ADDRESS_FIELDS)."""
    if channel not in ADDRESS_FIELDS:
        raise AudienceError(f"unknown channel {channel!r}")
    address, wanted = ADDRESS_FIELDS[channel]
    return and_(getattr(Labourer, address).is_not(None), getattr(Labourer, wanted).is_(True))


def has_address(channel: str) -> ColumnElement[bool]:
    if channel not in ADDRESS_FIELDS:
        raise AudienceError(f"unknown channel {channel!r}")
    return getattr(Labourer, ADDRESS_FIELDS[channel][0]).is_not(None)


def _years_ago(today: date, years: int) -> date:
    try:
        return today.replace(year=today.year - years)
    except ValueError:  # 29 February
        return today.replace(year=today.year - years, day=28)


def conditions(spec: dict[str, Any], *, today: date) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    for key in ("county", "township", "village", "employment_status", "household_status"):
        if key in spec:
            conds.append(getattr(Labourer, key).in_(spec[key]))
    if "gender" in spec:
        conds.append(Labourer.gender == spec["gender"])
    if "age_min" in spec:  # born on or before today minus age_min years
        conds.append(Labourer.birth_date <= _years_ago(today, spec["age_min"]))
    if "age_max" in spec:  # not yet age_max + 1
        conds.append(Labourer.birth_date > _years_ago(today, spec["age_max"] + 1))
    if "lists" in spec:
        members = {
            "training_need": exists().where(TrainingNeed.labourer_id == Labourer.id, TrainingNeed.status == "open"),
            "job_wish": exists().where(JobWish.labourer_id == Labourer.id, JobWish.status == "open"),
            "working_away": exists().where(WorkingAway.labourer_id == Labourer.id),
            "startup": Labourer.wants_startup.is_(True),
            "public_welfare_post": Labourer.public_welfare_post.is_(True),
        }
        conds.append(or_(*(members[name] for name in spec["lists"])))
    if "training_types" in spec:
        conds.append(
            exists().where(
                TrainingNeed.labourer_id == Labourer.id,
                TrainingNeed.status == "open",
                TrainingNeed.training_type.in_(spec["training_types"]),
            )
        )
    if "job_types" in spec or "job_places" in spec:
        wish = [JobWish.labourer_id == Labourer.id, JobWish.status == "open"]
        if "job_types" in spec:
            wish.append(JobWish.job_type.in_(spec["job_types"]))
        if "job_places" in spec:
            wish.append(or_(JobWish.place.in_(spec["job_places"]), JobWish.place_scope.in_(spec["job_places"])))
        conds.append(exists().where(*wish))
    channel = spec.get("channel")
    subscribed = spec.get("subscribed", False)
    if channel in CHANNELS:
        conds.append(reachable(channel) if subscribed else has_address(channel))
    elif channel == "any" or subscribed:
        test = reachable if subscribed else has_address
        conds.append(or_(*(test(c) for c in CHANNELS)))
    return conds


class _in_id_list(FunctionElement[bool]):
    """`column IN (the integers of a JSON array)`; the array is one bound parameter."""

    type = Boolean()
    inherit_cache = True
    name = "in_id_list"


@compiles(_in_id_list, "sqlite")
def _in_id_list_sqlite(element: _in_id_list, compiler: SQLCompiler, **kw: Any) -> str:
    column, ids = (compiler.process(c, **kw) for c in element.clauses)
    return f"({column} IN (SELECT value FROM json_each({ids})))"


@compiles(_in_id_list, "postgresql")
def _in_id_list_postgresql(element: _in_id_list, compiler: SQLCompiler, **kw: Any) -> str:
    column, ids = (compiler.process(c, **kw) for c in element.clauses)
    return f"({column} IN (SELECT CAST(value AS INTEGER) FROM json_array_elements_text(CAST({ids} AS JSON)) AS ids(value)))"


MAX_ID = 2**31 - 1  # the databases' INTEGER


def id_in(column: ColumnElement[int], ids: Iterable[int]) -> ColumnElement[bool]:
    """`column` is one of `ids`, for a list of any length (one bound parameter)."""
    unique = set(ids)
    if not all(type(i) is int and 1 <= i <= MAX_ID for i in unique):
        raise AudienceError("ids: expected row ids (whole numbers from 1)")
    return _in_id_list(column, literal(json.dumps(sorted(unique)), String))


def audience_where(
    spec: dict[str, Any], include_ids: list[int], exclude_ids: list[int], *, today: date
) -> ColumnElement[bool]:
    conds = conditions(validate_filter(spec), today=today)
    matched: ColumnElement[bool] = and_(true(), *conds)
    if include_ids:
        matched = or_(matched, id_in(Labourer.id, include_ids))
    if exclude_ids:
        matched = and_(matched, not_(id_in(Labourer.id, exclude_ids)))
    return matched


def audience_select(audience: Audience, *, today: date) -> Select[tuple[int]]:
    return select(Labourer.id).where(
        audience_where(audience.filter or {}, audience.include_ids or [], audience.exclude_ids or [], today=today)
    )


def resolve(session: Session, audience: Audience, *, today: date) -> list[int]:
    """The labourer ids the audience means today, in id order."""
    return list(session.scalars(audience_select(audience, today=today).order_by(Labourer.id)))
