"""The programme's figures, as the city reports them (seeds: 贫困劳动力 registered, with training needs and
trained by each of the five formats, with job wishes, employed through each of the five channels, working
away, rights complaints open and resolved, money recovered), by county or township, in the viewer's area.

The figures are counted by village (complaints by township) in one grouped pass over the labourers and
one over each list and the complaints; any area's figures are sums of those groups. City-wide that is seconds
of scanning on a quarter of a million labourers, so the dashboard reads the groups from a stored snapshot
(figures_snapshot) that a worker counts afresh in the background once it is a minute old; the export counts
afresh.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import case, distinct, func, or_, select, update
from sqlalchemy.orm import Session

from bot.auth import Actor
from bot.db import dialect_insert
from bot.models import Complaint, FiguresSnapshot, JobWish, Labourer, TrainingNeed, utcnow
from bot.scope import covers, scope_where, visible_areas

FORMATS = ("农闲班", "流动班", "小灶班", "网络班", "补习班")
CHANNELS = {"local_enterprise": "本地企业", "public_welfare": "公益性岗位", "workshop": "扶贫车间/家庭工坊",
            "flexible": "灵活就业", "labour_export": "劳务输出"}
OPEN_COMPLAINTS = ("new", "assigned", "in_progress")
RESOLVED_COMPLAINTS = ("resolved", "closed")

# (key, label) of every figure, in the order the page and the export show them.
FIGURES: tuple[tuple[str, str], ...] = (
    ("labourers", "登记劳动力"), ("poor", "其中贫困劳动力"), ("training_needs", "有培训需求"), ("trained", "已培训"),
    *((f"trained_{f}", f"　{f}") for f in FORMATS), ("job_wishes", "有就业意愿"),
    ("employed", "已就业（五个渠道）"), *((f"channel_{k}", f"　{v}") for k, v in CHANNELS.items()),
    ("working_away", "转移就业（外出务工）"), ("startup", "创业意愿"), ("public_welfare_post", "公益性岗位名单"),
    ("complaints_open", "维权投诉：处理中"), ("complaints_resolved", "维权投诉：已解决"),
    ("recovered", "挽回经济损失（元）"),
)


@dataclass
class Figures:
    level: str  # "county" | "township": what each row of `rows` is
    county: str | None  # the county drilled into, if any
    rows: dict[str, dict[str, int]] = field(default_factory=dict)  # place → figure → value
    total: dict[str, int] = field(default_factory=dict)

    def chart(self, keys: tuple[str, ...]) -> dict[str, Any]:
        return {"labels": list(self.rows), "series": {k: [self.rows[p].get(k, 0) for p in self.rows] for k in keys}}


def _level(actor: Actor, county: str | None) -> str:
    areas = visible_areas(actor)
    if county:
        return "township"
    if areas is not None and len({a.county for a in areas}) == 1:
        return "township"
    return "county"


# One group of figures: (county, township, village, {figure: value}); complaints come as township groups
# (village None), as they carry no village.
Group = tuple[str | None, str | None, str | None, dict[str, int]]


def figure_groups(session: Session, actor: Actor | None = None) -> list[Group]:
    """The figures of every village (complaints: of every township) inside the actor's area (None: the whole
    city): one grouped pass over the labourers, one over each list, one over the complaints. A labourer lives
    in one village, so the groups add up to any area's figures exactly."""
    groups: list[Group] = []

    def restrict(query: Any, model: type = Labourer) -> Any:
        return query if actor is None else scope_where(query, actor, model)

    def add(rows: Any, keys: list[str], places: int = 3) -> None:
        for row in rows:
            place = tuple(row[:places]) + (None,) * (3 - places)
            groups.append((*place, {key: int(value or 0) for key, value in zip(keys, row[places:], strict=True)}))

    def flag(condition: Any) -> Any:
        return func.sum(case((condition, 1), else_=0))

    village = (Labourer.county, Labourer.township, Labourer.village)
    add(session.execute(restrict(select(
        *village, func.count(), flag(Labourer.household_status == "registered_poor"),
        flag(Labourer.employment_channel.in_(tuple(CHANNELS))),
        *(flag(Labourer.employment_channel == k) for k in CHANNELS),
        flag(Labourer.employment_status == "working_away"), flag(Labourer.wants_startup.is_(True)),
        flag(Labourer.public_welfare_post.is_(True)),
    )).group_by(*village)), ["labourers", "poor", "employed", *(f"channel_{k}" for k in CHANNELS), "working_away",
                             "startup", "public_welfare_post"])

    trained = TrainingNeed.status == "trained"
    add(session.execute(restrict(select(
        *village, func.count(distinct(TrainingNeed.labourer_id)),
        func.count(distinct(case((trained, TrainingNeed.labourer_id)))),
        *(func.count(distinct(case((trained & (TrainingNeed.preferred_format == f), TrainingNeed.labourer_id))))
          for f in FORMATS),
    ).select_from(TrainingNeed).join(Labourer, Labourer.id == TrainingNeed.labourer_id)).group_by(*village)),
        ["training_needs", "trained", *(f"trained_{f}" for f in FORMATS)])

    add(session.execute(restrict(select(*village, func.count(distinct(JobWish.labourer_id))).select_from(JobWish)
                                 .join(Labourer, Labourer.id == JobWish.labourer_id)).group_by(*village)),
        ["job_wishes"])

    add(session.execute(restrict(select(
        Complaint.county, Complaint.township, flag(Complaint.status.in_(OPEN_COMPLAINTS)),
        flag(Complaint.status.in_(RESOLVED_COMPLAINTS)), func.coalesce(func.sum(Complaint.recovered_amount), 0),
    ), Complaint).group_by(Complaint.county, Complaint.township)),
        ["complaints_open", "complaints_resolved", "recovered"], places=2)
    return groups


def programme_figures(session: Session, actor: Actor, *, county: str | None = None,
                      groups: list[Group] | None = None) -> Figures:
    """The figures in the actor's area by county (or by township inside one county), from `groups` (the
    stored snapshot's) or counted now."""
    level = _level(actor, county)
    figures = Figures(level, county)
    if groups is None:
        groups = figure_groups(session, actor)
    for group_county, township, village, values in groups:
        if not covers(actor, group_county, township, village) or (county and group_county != county):
            continue
        into = figures.rows.setdefault((group_county if level == "county" else township) or "（未填）", {})
        for key, value in values.items():
            into[key] = into.get(key, 0) + value
    figures.rows = dict(sorted(figures.rows.items(), key=lambda item: -item[1].get("labourers", 0)))
    for values in figures.rows.values():
        for key, _label in FIGURES:
            values.setdefault(key, 0)
            figures.total[key] = figures.total.get(key, 0) + values[key]
    if not figures.total:
        figures.total = {key: 0 for key, _label in FIGURES}
    return figures


# ---- the stored snapshot -------------------------------------------------------------------------------

SNAPSHOT_ID = 1
REFRESH_TIMEOUT = timedelta(minutes=10)  # a refresh that has not finished by then died with its worker


def stored_figures(session: Session) -> FiguresSnapshot | None:
    return session.get(FiguresSnapshot, SNAPSHOT_ID)


def refresh_figures(session: Session) -> FiguresSnapshot:
    """Count the whole city's groups now and store them (the caller commits)."""
    groups = [list(group) for group in figure_groups(session)]
    now = utcnow()
    session.execute(dialect_insert(session, FiguresSnapshot.__table__)
                    .values(id=SNAPSHOT_ID, groups=groups, computed_at=now, refreshing_at=None)
                    .on_conflict_do_update(index_elements=["id"],
                                           set_={"groups": groups, "computed_at": now, "refreshing_at": None}))
    session.expire_all()
    snapshot = stored_figures(session)
    assert snapshot is not None
    return snapshot


def claim_refresh(session: Session, older_than: timedelta) -> bool:
    """Whether this worker should count afresh: the snapshot is older than `older_than` and nobody else is
    counting (one UPDATE decides between workers). The caller commits, then calls refresh_figures."""
    now = utcnow()
    claimed = session.execute(
        update(FiguresSnapshot).where(
            FiguresSnapshot.id == SNAPSHOT_ID, FiguresSnapshot.computed_at < now - older_than,
            or_(FiguresSnapshot.refreshing_at.is_(None), FiguresSnapshot.refreshing_at < now - REFRESH_TIMEOUT))
        .values(refreshing_at=now)).rowcount
    return bool(claimed)


def figures_workbook(figures: Figures) -> bytes:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("就业扶贫数据")
    sheet.append(["指标", "合计", *figures.rows])
    for key, label in FIGURES:
        sheet.append([label.strip(), figures.total.get(key, 0), *(v.get(key, 0) for v in figures.rows.values())])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
