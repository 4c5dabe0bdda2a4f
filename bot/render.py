"""Event texts: templates with an event's and a person's values filled in — broadcasts (scheduler.render),
the event list and the replies to a sign-up (bot.intents.events, bot.signups).

Templates name their placeholders in Chinese ({姓名} {时间} {地点} {报名方式} …) so officials can write them;
a placeholder we do not know is left as written rather than failing the whole message. The texts themselves
(time format, sign-up instructions, default templates) are the knowledge snapshot's campaign texts.
"""

from __future__ import annotations

import re
import string
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.models import Event

PLACEHOLDERS = ("姓名", "活动", "时间", "地点", "报名方式", "岗位数", "费用", "主办", "位置")


_FORMATTER = string.Formatter()
# A clause ends at one of these; a sentence at the first group (the stronger: kept when a clause is dropped).
SENTENCE_ENDS = "。！？!?\n"
CLAUSE_ENDS = "，,；;、：:"
_CLAUSES = re.compile(f"([{SENTENCE_ENDS}{CLAUSE_ENDS}])")
_NAMES = re.compile(r"\{([^{}!:]*)[^{}]*\}")


# What an event may leave out (how many jobs, what it costs, who organises it): the clause saying it goes.
OPTIONAL = frozenset({"岗位数", "费用", "主办"})


def drop_empty_clauses(template: str, values: dict[str, Any]) -> str:
    """The template without the clauses whose optional values are missing ("，提供岗位{岗位数}个" for an event
    that did not say how many jobs), keeping the stronger of the punctuation marks around each one."""
    pieces = _CLAUSES.split(template)  # text, mark, text, mark, …, text
    texts, marks = pieces[0::2], pieces[1::2] + [""]
    kept: list[list[str]] = []  # [text, mark after it]
    for text, mark in zip(texts, marks, strict=True):
        if any(name in OPTIONAL and values.get(name, 0) in (None, "") for name in _NAMES.findall(text)):
            if kept and (kept[-1][1] in CLAUSE_ENDS or not kept[-1][1]) and mark in SENTENCE_ENDS:
                kept[-1][1] = mark  # "举行，提供岗位个。" → "举行。"
            continue
        kept.append([text, mark])
    return "".join(text + mark for text, mark in kept)


def fill(template: str, values: dict[str, Any]) -> str:
    """`template` with `values` filled in. A clause whose value is missing is left out; a placeholder we do
    not know stays as written; a number that would run into the next one ("招聘会1" before "12月12日") is
    kept apart by a space; a stray "{" in an official's text sends the text as written."""
    try:
        parsed = list(_FORMATTER.parse(drop_empty_clauses(template, values)))
        out = ""
        for literal, name, spec, conversion in parsed:
            out = _join(out, literal)
            if name is None:
                continue
            if name not in values:
                out += "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
                continue
            value = _FORMATTER.convert_field(values[name], conversion) if conversion else values[name]
            out = _join(out, format(value, spec or ""))
        return out
    except (ValueError, IndexError, TypeError):  # a stray "{" or a format the value cannot take
        return template


def _join(text: str, more: str) -> str:
    if text and more and text[-1].isdigit() and more[0].isdigit():
        return f"{text} {more}"
    return text + more


def end_sentence(text: str) -> str:
    """`text` ending with a full stop unless it ends a sentence already: what a gateway appends after it (the
    opt-out instruction) then reads as a sentence of its own, not "回1报名拒收请回复R"."""
    text = text.rstrip()
    return text if not text or text[-1] in SENTENCE_ENDS + "”」）)" else text + "。"


def format_time(when: datetime | None, tz: str, texts: dict[str, Any]) -> str:
    if when is None:
        return ""
    local = when.astimezone(ZoneInfo(tz))
    return texts["time_format"].format(month=local.month, day=local.day, hour=local.hour, minute=local.minute)


def event_values(event: Event | None, tz: str, texts: dict[str, Any], *, sms: bool = False,
                 signup: bool = True) -> dict[str, Any]:
    if event is None:
        return {"报名方式": texts["no_signup_how"]}
    how = (texts["signup_how_sms"] if sms else texts["signup_how"]) if signup and event.signup_enabled else texts["no_signup_how"]
    return {
        "活动": event.title,
        "时间": format_time(event.starts_at, tz, texts),
        "地点": event.venue or event.township or event.county or "",
        "报名方式": how,
        "岗位数": event.jobs_count if event.jobs_count is not None else "",
        "费用": event.cost_note or "",
        "主办": event.organiser or "",
    }


def default_templates(kind: str | None, texts: dict[str, Any]) -> tuple[str, str]:
    """The (WeChat, SMS) templates a new campaign starts from, by event kind."""
    key = kind if kind in ("job_fair", "training") else "other"
    return texts["default_template"][key], texts["default_sms_template"][key]
