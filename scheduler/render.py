"""Broadcast texts: the campaign's template with the event's and the person's values filled in (bot.render
fills them; here is what a campaign adds: its own templates, the reminder prefix)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from bot.knowledge import read_yaml
from bot.models import Campaign, Event
from bot.render import end_sentence, event_values, fill
from bot.settings import default_knowledge_dir


@lru_cache(maxsize=4)
def campaign_texts(knowledge_dir: Path | None = None) -> dict[str, Any]:
    path = (knowledge_dir or default_knowledge_dir()) / "campaign_texts.yaml"
    if not path.exists():  # a custom knowledge dir without it still gets the packaged defaults
        path = default_knowledge_dir() / "campaign_texts.yaml"
    return read_yaml(path)


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
        if channel == "sms":  # the gateway appends the opt-out instruction: end the notice's own sentence first
            return end_sentence(self.prefix + fill(self.sms_template, {**self.sms_values, "姓名": name}))
        return self.prefix + fill(self.template, {**self.values, "姓名": name})
