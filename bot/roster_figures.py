"""The programme's figures, as the city reports them (seeds: 贫困劳动力 registered, with training needs and
trained by each of the five formats, with job wishes, employed through each of the five channels, working
away, rights complaints open and resolved, money recovered), by county or township, in the viewer's area.

Each figure is one grouped query over the registry (labourer's own columns in one pass, the lists and the
complaints in one more each), so the page stays fast on a city's quarter of a million labourers.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, distinct, func, select
from sqlalchemy.orm import Session

from bot.auth import Actor
from bot.models import Complaint, JobWish, Labourer, TrainingNeed
from bot.scope import scope_where, visible_areas

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


def programme_figures(session: Session, actor: Actor, *, county: str | None = None) -> Figures:
    level = _level(actor, county)
    place = Labourer.county if level == "county" else Labourer.township
    figures = Figures(level, county)

    def restrict(query: Any, model: type = Labourer) -> Any:
        query = scope_where(query, actor, model)
        if county:
            query = query.where((Labourer.county if model is not Complaint else Complaint.county) == county)
        return query

    def add(rows: Any) -> None:
        for where, *values in rows:
            into = figures.rows.setdefault(where or "（未填）", {})
            for key, value in zip(keys, values, strict=True):
                into[key] = into.get(key, 0) + int(value or 0)

    def flag(condition: Any) -> Any:
        return func.sum(case((condition, 1), else_=0))

    keys = ["labourers", "poor", "employed", *(f"channel_{k}" for k in CHANNELS), "working_away", "startup",
            "public_welfare_post"]
    add(session.execute(restrict(select(
        place, func.count(), flag(Labourer.household_status == "registered_poor"),
        flag(Labourer.employment_channel.in_(tuple(CHANNELS))),
        *(flag(Labourer.employment_channel == k) for k in CHANNELS),
        flag(Labourer.employment_status == "working_away"), flag(Labourer.wants_startup.is_(True)),
        flag(Labourer.public_welfare_post.is_(True)),
    )).group_by(place)))

    keys = ["training_needs", "trained", *(f"trained_{f}" for f in FORMATS)]
    trained = TrainingNeed.status == "trained"
    add(session.execute(restrict(select(
        place, func.count(distinct(TrainingNeed.labourer_id)),
        func.count(distinct(case((trained, TrainingNeed.labourer_id)))),
        *(func.count(distinct(case((trained & (TrainingNeed.preferred_format == f), TrainingNeed.labourer_id))))
          for f in FORMATS),
    ).select_from(TrainingNeed).join(Labourer, Labourer.id == TrainingNeed.labourer_id)).group_by(place)))

    keys = ["job_wishes"]
    add(session.execute(restrict(select(place, func.count(distinct(JobWish.labourer_id))).select_from(JobWish)
                                 .join(Labourer, Labourer.id == JobWish.labourer_id)).group_by(place)))

    keys = ["complaints_open", "complaints_resolved", "recovered"]
    complaint_place = Complaint.county if level == "county" else Complaint.township
    add(session.execute(restrict(select(
        complaint_place, flag(Complaint.status.in_(OPEN_COMPLAINTS)), flag(Complaint.status.in_(RESOLVED_COMPLAINTS)),
        func.coalesce(func.sum(Complaint.recovered_amount), 0),
    ), Complaint).group_by(complaint_place)))

    figures.rows = dict(sorted(figures.rows.items(), key=lambda item: -item[1].get("labourers", 0)))
    for values in figures.rows.values():
        for key, _label in FIGURES:
            values.setdefault(key, 0)
            figures.total[key] = figures.total.get(key, 0) + values[key]
    if not figures.total:
        figures.total = {key: 0 for key, _label in FIGURES}
    return figures


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
