"""Event texts: templates with an event's and a person's values filled in — broadcasts (scheduler.render),
the event list and the replies to a sign-up (bot.intents.events, bot.signups).

Templates name their placeholders in Chinese ({姓名} {时间} {地点} {报名方式} …) so officials can write them;
a placeholder we do not know is left as written rather than failing the whole message. The texts themselves
(time format, sign-up instructions, default templates) are the knowledge snapshot's campaign texts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.models import Event

PLACEHOLDERS = ("姓名", "活动", "时间", "地点", "报名方式", "岗位数", "费用", "主办", "位置")


class _Keep(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill(template: str, values: dict[str, Any]) -> str:
    try:
        return template.format_map(_Keep(values))
    except (ValueError, IndexError):  # a stray "{" in an official's text: send it as written
        return template


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
        "地点": event.venue or event.township or "",
        "报名方式": how,
        "岗位数": event.jobs_count if event.jobs_count is not None else "",
        "费用": event.cost_note or "",
        "主办": event.organiser or "",
    }


def default_templates(kind: str | None, texts: dict[str, Any]) -> tuple[str, str]:
    """The (WeChat, SMS) templates a new campaign starts from, by event kind."""
    key = kind if kind in ("job_fair", "training") else "other"
    return texts["default_template"][key], texts["default_sms_template"][key]
