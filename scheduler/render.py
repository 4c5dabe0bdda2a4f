"""Broadcast texts: the campaign's template with the event's and the person's values filled in.

Templates name their placeholders in Chinese ({姓名} {时间} {地点} {报名方式} …) so officials can write them;
a placeholder we do not know is left as written rather than failing the whole broadcast.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.knowledge import read_yaml
from bot.models import Campaign, Event
from bot.settings import default_knowledge_dir

PLACEHOLDERS = ("姓名", "活动", "时间", "地点", "报名方式", "岗位数", "费用", "主办", "位置")


class _Keep(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@lru_cache(maxsize=4)
def campaign_texts(knowledge_dir: Path | None = None) -> dict[str, Any]:
    path = (knowledge_dir or default_knowledge_dir()) / "campaign_texts.yaml"
    if not path.exists():  # a custom knowledge dir without it still gets the packaged defaults
        path = default_knowledge_dir() / "campaign_texts.yaml"
    return read_yaml(path)


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
    key = kind if kind in ("job_fair", "training") else "other"
    return texts["default_template"][key], texts["default_sms_template"][key]


class Renderer:
    """Renders one campaign's messages; built once per campaign per batch (the event values are shared)."""

    def __init__(self, campaign: Campaign, event: Event | None, *, tz: str, texts: dict[str, Any],
                 reminder: bool = False) -> None:
        self.template = campaign.template
        self.sms_template = campaign.sms_template or campaign.template
        self.prefix = texts["reminder_prefix"] if reminder else ""
        self.values = event_values(event, tz, texts, signup=campaign.signup)
        self.sms_values = event_values(event, tz, texts, sms=True, signup=campaign.signup)

    def render(self, channel: str, name: str) -> str:
        if channel == "sms":
            return self.prefix + fill(self.sms_template, {**self.sms_values, "姓名": name})
        return self.prefix + fill(self.template, {**self.values, "姓名": name})
