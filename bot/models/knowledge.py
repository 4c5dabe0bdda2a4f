"""Officials' changes to the knowledge, stored over the packaged files of knowledge/ (bot.knowledge_edits).

Append-only: a change, and the undoing of one, is a new row; the newest row of an item is what is live.
The newest row id of the whole table is part of the knowledge snapshot's sources (bot.snapshot), read by
every process at each poll through the primary key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.models.base import Base, utcnow


class KnowledgeRevision(Base):
    """One item's new value: a policy entry (key: its id), a reply text (key: "texts:menu.title",
    "dialogs:register_job.done") or a catalogue item (key: "training_types:焊工"). `value` None means back to
    the packaged default (an item the files do not have is then gone)."""

    __tablename__ = "knowledge_revision"
    __table_args__ = (Index("ix_knowledge_revision_item", "kind", "key", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # entry | text | catalogue
    key: Mapped[str] = mapped_column(String(160))
    value: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    note: Mapped[str | None] = mapped_column(Text)
    # The revision this one undid (a revert), for the history to say so.
    reverts: Mapped[int | None] = mapped_column(Integer, ForeignKey("knowledge_revision.id"))
    author: Mapped[str] = mapped_column(String(64))
    author_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
