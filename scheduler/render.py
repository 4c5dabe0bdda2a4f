"""Broadcast texts: the campaign's template with the event's and the person's values filled in (bot.render
fills them; here is what a campaign adds: its own templates, the reminder prefix).

The campaign texts (time format, sign-up instructions, reminder prefix) are the knowledge snapshot's, so an
official's change to them (a knowledge revision) reaches the next batch a dispatcher renders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bot.knowledge_edits import DatabaseRevisions
from bot.models import Campaign, Event
from bot.render import end_sentence, event_values, fill
from bot.settings import Settings, default_knowledge_dir
from bot.snapshot import KnowledgeStore


def knowledge_for(factory: sessionmaker[Session], knowledge_dir: Path | None = None,
                  poll_seconds: float = Settings.model_fields["knowledge_poll_seconds"].default) -> KnowledgeStore:
    """The knowledge snapshot of a process that sends broadcasts without answering messages (a dispatch
    worker): the files of `knowledge_dir` with the officials' changes stored in this database, looked at
    again on use every `poll_seconds`."""
    return KnowledgeStore(knowledge_dir or default_knowledge_dir(), revisions=DatabaseRevisions(factory.kw["bind"]),
                          max_age=poll_seconds)


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
