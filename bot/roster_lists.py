"""Labourers and the five lists (五名单) as staff read them: search, one labourer's whole record, each list
with filters and counts by township, the two lists officials keep by hand (创业意愿, 公益性岗位) as flags,
and the Excel export. Everything goes through bot.scope; ID numbers and phones stay masked (bot.reveal
shows one in clear, audited) and an export is audited.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, func, literal_column, or_, select, union_all
from sqlalchemy.orm import InstrumentedAttribute, Session

from bot import pii
from bot.audit import audit
from bot.auth import Actor
from bot.errors import Invalid
from bot.models import (
    Complaint,
    ConversationState,
    Event,
    JobWish,
    Labourer,
    MessageLog,
    SignUp,
    TrainingNeed,
    WorkingAway,
)
from bot.reveal import may_reveal
from bot.scope import get_scoped, scope_where, visible_areas

PAGE = 50
EXPORT_LIMIT = 100_000  # rows in one Excel export
MESSAGES_SHOWN = 50


# ---- searching labourers ----------------------------------------------------------------------------

_DIGITS = re.compile(r"^[0-9Xx]{1,4}$")


# The last four digits of the masked copies (fixed lengths: bot.pii.mask_id_number 18, mask_phone 11), as
# indexed by migration 0020: the expressions must read exactly as the indexes do.
ID_LAST4 = literal_column("substr(labourer.id_number_masked, 15)")
PHONE_LAST4 = literal_column("substr(labourer.phone_masked, 8)")


def search_condition(q: str, data_key: str, *, codepoint_order: bool = False) -> ColumnElement[bool] | None:
    """What a search box means: a whole ID number or phone (matched by its look-up hash), the last digits
    of one (the masked copies keep the last four), or a name (or its beginning). `codepoint_order`: the
    database compares text by code point (SQLite), so a name's beginning is an index range."""
    q = pii.fold_full_width(q.strip())
    if not q:
        return None
    for normalize, column in ((pii.normalize_id_number, Labourer.id_number_hash), (pii.normalize_phone, Labourer.phone_hash)):
        try:
            return column == pii.lookup_hash(normalize(q), data_key)
        except pii.InvalidPersonalData:
            pass
    if _DIGITS.match(q):
        suffix = q.upper()
        if len(suffix) == 4:
            # The ids from each last-four index, not an OR beside the area: with the area's equalities next
            # to it SQLite's planner takes the area index and reads every labourer of the township instead
            # (20 ms against under 1 ms at a township of 7,000)
            return Labourer.id.in_(union_all(select(Labourer.id).where(PHONE_LAST4 == suffix),
                                             select(Labourer.id).where(ID_LAST4 == suffix)))
        return or_(Labourer.phone_masked.like(f"%{suffix}"), Labourer.id_number_masked.like(f"%{suffix}"))
    begins = Labourer.name.like(f"{_escape_like(q)}%", escape="\\")
    if codepoint_order and ord(q[-1]) < 0x10FFFF and not any(ch.isascii() and ch.isalpha() for ch in q):
        # SQLite's LIKE folds case, so no index serves it; the same names as a range of the name index
        begins = begins & (Labourer.name >= q) & (Labourer.name < q[:-1] + chr(ord(q[-1]) + 1))
    return or_(Labourer.name == q, begins)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class Page:
    """One page of rows in id order, found by the ids around it (keyset: as fast on the last page as on the
    first, where an OFFSET reads every row before it)."""

    rows: list[Any]
    before: int | None  # the id for the link to the page before (None: this is the first)
    after: int | None  # the id for the link to the page after (None: this is the last)


def keyset_page(session: Session, query: Select[Any], key: InstrumentedAttribute[int], *, after: int = 0,
                before: int = 0, limit: int = PAGE) -> Page:
    """The `limit` rows after id `after` (or just before id `before`); each row's first column is its id."""
    if before:
        found = session.execute(query.where(key < before).order_by(key.desc()).limit(limit + 1)).all()
        rows = list(reversed(found[:limit]))
        return Page(rows, _row_id(rows[0]) if rows and len(found) > limit else None,
                    _row_id(rows[-1]) if rows else None)
    found = session.execute((query.where(key > after) if after else query).order_by(key).limit(limit + 1)).all()
    rows = list(found[:limit])
    first, last = (_row_id(rows[0]), _row_id(rows[-1])) if rows else (None, None)
    return Page(rows, first if after else None, last if len(found) > limit else None)


def _row_id(row: Any) -> int:
    head = row[0]
    return head if isinstance(head, int) else head.id


def search_labourers(session: Session, actor: Actor, *, q: str = "", township: str = "", village: str = "",
                     after: int = 0, before: int = 0, data_key: str) -> tuple[Page, int]:
    """One page of the labourers the search finds in the actor's area, and how many it finds."""
    query = scope_where(select(Labourer), actor)
    condition = search_condition(q, data_key, codepoint_order=session.get_bind().dialect.name == "sqlite")
    if condition is not None:
        query = query.where(condition)
    if township:
        query = query.where(Labourer.township == township)
    if village:
        query = query.where(Labourer.village == village)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    return keyset_page(session, query, Labourer.id, after=after, before=before), total


# ---- one labourer -------------------------------------------------------------------------------------


@dataclass
class Profile:
    labourer: Labourer
    training_needs: list[TrainingNeed]
    job_wishes: list[JobWish]
    working_away: list[WorkingAway]
    complaints: list[Complaint]
    signups: list[tuple[SignUp, Event]]
    bindings: list[ConversationState]
    messages: list[MessageLog]  # newest first, text redacted
    may_reveal: dict[str, bool]


def labourer_profile(session: Session, actor: Actor, labourer_id: int) -> Profile:
    labourer = get_scoped(session, Labourer, labourer_id, actor)

    def of(model: Any) -> list[Any]:
        return list(session.scalars(select(model).where(model.labourer_id == labourer.id).order_by(model.id)))

    complaints = session.scalars(scope_where(select(Complaint).where(Complaint.labourer_id == labourer.id), actor)
                                 .order_by(Complaint.id)).all()
    signups = session.execute(select(SignUp, Event).join(Event, Event.id == SignUp.event_id)
                              .where(SignUp.labourer_id == labourer.id).order_by(SignUp.id)).all()
    bindings = of(ConversationState)
    addresses = [(b.channel, b.user_id) for b in bindings]
    if labourer.wechat_openid:
        addresses.append(("wechat", labourer.wechat_openid))
    if labourer.sms_number_hash:
        addresses.append(("sms", labourer.sms_number_hash))
    messages: list[MessageLog] = []
    if addresses:
        conditions = [(MessageLog.channel == channel) & (MessageLog.user_id == user) for channel, user in set(addresses)]
        messages = list(session.scalars(select(MessageLog).where(or_(*conditions))
                                        .order_by(MessageLog.id.desc()).limit(MESSAGES_SHOWN)))
        for message in messages:
            session.expunge(message)  # shown redacted, never written back
            message.text = pii.redact(message.text or "")
    return Profile(labourer, of(TrainingNeed), of(JobWish), of(WorkingAway), list(complaints), list(signups),
                   bindings, messages, {f: may_reveal(actor, "labourer", f) for f in ("id_number", "phone")})


FLAGS = {"startup": Labourer.wants_startup, "public_welfare_post": Labourer.public_welfare_post}


def set_flag(session: Session, actor: Actor, labourer_id: int, flag: str, on: bool) -> Labourer:
    """Put a labourer on (or take them off) the startup or the public-welfare list; audited."""
    if flag not in FLAGS:
        raise Invalid(f"unknown list {flag!r}")
    labourer = get_scoped(session, Labourer, labourer_id, actor)
    setattr(labourer, FLAGS[flag].key, on)
    audit(session, actor, "list_" + ("added" if on else "removed"), object_type="labourer", object_id=labourer.id,
          detail={"list": flag})
    session.flush()
    return labourer


# ---- the five lists --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListColumn:
    label: str
    value: Callable[[Any, Labourer], Any]


@dataclass(frozen=True)
class FiveList:
    key: str
    label: str
    model: type | None  # the list's own rows; None: a flag on the labourer
    flag: InstrumentedAttribute[bool] | None
    filters: tuple[tuple[str, str, InstrumentedAttribute[Any]], ...]  # (form field, label, column)
    columns: tuple[ListColumn, ...]
    editable: bool = False


def _v(name: str) -> Callable[[Any, Labourer], Any]:
    return lambda row, _lab: getattr(row, name)


STATUS_WORDS = {"open": "待安排", "arranged": "已安排", "trained": "已培训", "cancelled": "已取消", "matched": "已推荐",
                "employed": "已就业"}
EMPLOYMENT_WORDS = {"unknown": "不详", "unemployed": "未就业", "local": "本地就业", "working_away": "外出务工",
                    "self_employed": "自主创业"}
CHANNEL_WORDS = {"local_enterprise": "本地企业", "public_welfare": "公益性岗位", "workshop": "扶贫车间/家庭工坊",
                 "flexible": "灵活就业", "labour_export": "劳务输出"}

LISTS: dict[str, FiveList] = {
    "training_need": FiveList(
        "training_need", "培训需求名单", TrainingNeed, None,
        (("training_type", "培训工种", TrainingNeed.training_type), ("format", "培训方式", TrainingNeed.preferred_format),
         ("status", "状态", TrainingNeed.status)),
        (ListColumn("培训工种", _v("training_type")), ListColumn("培训方式", lambda r, _l: r.preferred_format or "不限"),
         ListColumn("什么时候有空", _v("available_from")),
         ListColumn("状态", lambda r, _l: STATUS_WORDS.get(r.status, r.status)))),
    "job_wish": FiveList(
        "job_wish", "就业意愿名单", JobWish, None,
        (("job_type", "想做的工作", JobWish.job_type), ("place_scope", "去哪里", JobWish.place_scope),
         ("status", "状态", JobWish.status)),
        (ListColumn("想做的工作", _v("job_type")), ListColumn("去哪里", lambda r, _l: r.place or r.place_scope or ""),
         ListColumn("最低月薪", _v("min_monthly_pay")), ListColumn("何时能上岗", _v("start_when")),
         ListColumn("状态", lambda r, _l: STATUS_WORDS.get(r.status, r.status)))),
    "working_away": FiveList(
        "working_away", "转移就业名单", WorkingAway, None,
        (("place", "务工地", WorkingAway.place), ("job_type", "工种", WorkingAway.job_type)),
        (ListColumn("务工地", _v("place")), ListColumn("单位", _v("employer")), ListColumn("工种", _v("job_type")),
         ListColumn("外出时间", _v("since")))),
    "startup": FiveList(
        "startup", "创业意愿名单", None, Labourer.wants_startup,
        (("employment_status", "就业状态", Labourer.employment_status),),
        (ListColumn("就业状态", lambda _r, lab: EMPLOYMENT_WORDS.get(lab.employment_status, lab.employment_status)),),
        editable=True),
    "public_welfare_post": FiveList(
        "public_welfare_post", "公益性岗位名单", None, Labourer.public_welfare_post,
        (("employment_channel", "就业渠道", Labourer.employment_channel),),
        (ListColumn("就业渠道", lambda _r, lab: CHANNEL_WORDS.get(lab.employment_channel or "", "")),),
        editable=True),
}


def five_list(key: str) -> FiveList:
    if key not in LISTS:
        raise Invalid(f"unknown list {key!r}")
    return LISTS[key]


def _list_query(spec: FiveList, actor: Actor, filters: dict[str, str]) -> Select[Any]:
    if spec.model is not None:
        query = select(spec.model, Labourer).join(Labourer, Labourer.id == spec.model.labourer_id)  # type: ignore[attr-defined]
    else:
        # "= true", not "IS true": the partial indexes of the two flag lists are declared so (migration 0020)
        query = select(Labourer.id, Labourer).where(spec.flag == True)  # type: ignore[union-attr]  # noqa: E712
    query = scope_where(query, actor, Labourer)
    for name, column in (("township", Labourer.township), ("village", Labourer.village)):
        if filters.get(name):
            query = query.where(column == filters[name])
    for name, _label, column in spec.filters:
        if filters.get(name):
            query = query.where(column == filters[name])
    return query


def list_rows(session: Session, actor: Actor, key: str, filters: dict[str, str], *, after: int = 0,
              before: int = 0) -> tuple[Page, int]:
    """One page of a list (rows of (the list's row, the labourer)) and its total, under the filters and area."""
    spec = five_list(key)
    order = (spec.model.id if spec.model is not None else Labourer.id)  # type: ignore[attr-defined]
    page = keyset_page(session, _list_query(spec, actor, filters), order, after=after, before=before)
    return page, list_count(session, actor, key, filters)


def list_count(session: Session, actor: Actor, key: str, filters: dict[str, str]) -> int:
    """How many rows a list has under the filters in the actor's area. When nothing about the labourer narrows
    it (staff who see the whole city, filters on the list's own columns) the list's own rows are counted,
    without the registry (every row has its labourer: a foreign key, deleted with them)."""
    spec = five_list(key)
    if spec.model is not None and visible_areas(actor) is None and not filters.get("township") \
            and not filters.get("village"):
        query = select(func.count()).select_from(spec.model)  # type: ignore[arg-type]
        for name, _label, column in spec.filters:
            if filters.get(name):
                query = query.where(column == filters[name])
        return session.scalar(query) or 0
    return session.scalar(_list_query(spec, actor, filters).with_only_columns(func.count())) or 0


def township_counts(session: Session, actor: Actor, key: str, filters: dict[str, str]) -> dict[str, int]:
    """A list's rows by the labourers' township, under the filters and area, most first."""
    counts = session.execute(_list_query(five_list(key), actor, filters)
                             .with_only_columns(Labourer.township, func.count()).group_by(Labourer.township)
                             .order_by(func.count().desc())).all()
    return {t or "（未填）": n for t, n in counts}


def filter_choices(session: Session, actor: Actor, key: str) -> dict[str, list[str]]:
    """The values each filter of a list can take in the actor's area (for the filter form)."""
    spec = five_list(key)
    # Staff who see the whole city: a filter on the list's own column reads the list alone (as list_count
    # does), not the list joined to the registry (SQLite, 60,000 training needs: 10 ms against 110 ms each)
    whole_city = spec.model is not None and visible_areas(actor) is None
    choices = {}
    for name, _label, column in spec.filters:
        query = select(column) if whole_city and column.class_ is spec.model else \
            _list_query(spec, actor, {}).with_only_columns(column)
        choices[name] = [v for v in session.scalars(query.distinct().order_by(column).limit(200)) if v]
    query = _list_query(spec, actor, {}).with_only_columns(Labourer.township).distinct().order_by(Labourer.township)
    choices["township"] = [v for v in session.scalars(query.limit(200)) if v]
    return choices


def export_list(session: Session, actor: Actor, key: str, filters: dict[str, str], *, reveal: bool,
                data_key: str) -> bytes:
    """The list as an Excel workbook (openpyxl, streaming). ID numbers and phones masked, unless `reveal`
    and the actor's role may see them in clear; audited either way."""
    from openpyxl import Workbook

    spec = five_list(key)
    clear = {f: reveal and may_reveal(actor, "labourer", f) for f in ("id_number", "phone")}
    audit(session, actor, "export", object_type="list", object_id=key,
          detail={"what": f"{key}_xlsx", "filters": {k: v for k, v in filters.items() if v},
                  "clear": [f for f, on in clear.items() if on]})
    book = Workbook(write_only=True)
    sheet = book.create_sheet(spec.label)
    sheet.append(["姓名", "身份证号" + ("" if clear["id_number"] else "（已隐藏）"),
                  "手机号" + ("" if clear["phone"] else "（已隐藏）"), "区县", "乡镇", "村", "户籍类型",
                  *(c.label for c in spec.columns)])
    query = _list_query(spec, actor, filters).order_by(Labourer.id).limit(EXPORT_LIMIT)
    for row, labourer in session.execute(query):
        id_number = pii.decrypt(labourer.id_number_enc, data_key) if clear["id_number"] and labourer.id_number_enc \
            else labourer.id_number_masked
        phone = pii.decrypt(labourer.phone_enc, data_key) if clear["phone"] and labourer.phone_enc \
            else labourer.phone_masked
        sheet.append([labourer.name, id_number, phone, labourer.county, labourer.township, labourer.village,
                      "贫困户" if labourer.household_status == "registered_poor" else "一般户",
                      *(c.value(row, labourer) for c in spec.columns)])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
