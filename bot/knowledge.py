"""Reads knowledge/ (data, not code) and validates it: a bad file is refused with the reason, at start-up or
when a new version is loaded into the running service (bot.snapshot)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.nlu.types import TOPICS
from bot.settings import default_knowledge_dir

SMS_ANSWER_LIMIT = 140
_PACKAGED = default_knowledge_dir()


class KnowledgeError(ValueError):
    pass


@dataclass(frozen=True)
class PolicyEntry:
    id: str
    topic: str
    title: str
    questions: tuple[str, ...]
    answer: str
    detail: str
    source: str


@dataclass(frozen=True)
class CatalogueItem:
    name: str
    aliases: tuple[str, ...] = ()
    category: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class KnowledgeBase:
    directory: Path
    topics: dict[str, dict[str, Any]]
    entries: dict[str, PolicyEntry]
    training_types: tuple[CatalogueItem, ...] = ()
    job_types: tuple[CatalogueItem, ...] = ()
    formats: tuple[CatalogueItem, ...] = ()
    regions: dict[str, Any] = field(default_factory=dict)
    texts: dict[str, Any] = field(default_factory=dict)  # texts.yaml: the bot's replies
    dialog_texts: dict[str, Any] = field(default_factory=dict)  # dialogs.yaml: what the dialogs say
    campaign_texts: dict[str, Any] = field(default_factory=dict)  # campaign_texts.yaml: events and broadcasts

    def entries_for(self, topic: str) -> list[PolicyEntry]:
        return [e for e in self.entries.values() if e.topic == topic]

    def text(self, key: str, **values: Any) -> str:
        """A reply sentence from knowledge/texts.yaml; dotted keys reach into sections."""
        node: Any = self.texts
        for part in key.split("."):
            node = node[part]
        return str(node).format(**values) if values else str(node)


# libyaml's loader when present: the knowledge files are most of the start-up time otherwise.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as fh:
            return yaml.load(fh, Loader=YAML_LOADER)  # noqa: S506 - a safe loader
    except (OSError, yaml.YAMLError) as exc:
        raise KnowledgeError(f"{path}: {exc}") from exc


def _catalogue(path: Path) -> tuple[CatalogueItem, ...]:
    if not path.exists():
        return ()
    items = []
    for raw in read_yaml(path) or []:
        items.append(
            CatalogueItem(
                name=raw["name"],
                aliases=tuple(raw.get("aliases") or ()),
                category=raw.get("category"),
                description=raw.get("description") or raw.get("explain"),
            )
        )
    return tuple(items)


def _policy_entries(directory: Path) -> dict[str, PolicyEntry]:
    entries: dict[str, PolicyEntry] = {}
    for path in sorted((directory / "policies").glob("*.yaml")):
        doc = read_yaml(path) or {}
        topic = doc.get("topic")
        if topic not in TOPICS:
            raise KnowledgeError(f"{path}: unknown topic {topic!r}")
        for raw in doc.get("entries") or []:
            entry = PolicyEntry(
                id=raw["id"],
                topic=topic,
                title=raw["title"],
                questions=tuple(raw.get("questions") or ()),
                answer=" ".join(str(raw["answer"]).split()),
                detail=str(raw.get("detail") or "").strip(),
                source=str(raw.get("source") or "").strip(),
            )
            if entry.id in entries:
                raise KnowledgeError(f"{path}: duplicate entry id {entry.id}")
            if len(entry.answer) > SMS_ANSWER_LIMIT:
                raise KnowledgeError(f"{path}: {entry.id} answer is {len(entry.answer)} > {SMS_ANSWER_LIMIT} chars")
            if not entry.questions:
                raise KnowledgeError(f"{path}: {entry.id} has no questions")
            entries[entry.id] = entry
    return entries


def load_knowledge(directory: Path) -> KnowledgeBase:
    """Everything in `directory`, checked. Raises KnowledgeError naming the file and the problem."""
    directory = Path(directory)
    if not directory.is_dir():
        raise KnowledgeError(f"knowledge directory not found: {directory} (set GONGYOU_KNOWLEDGE_DIR)")
    topics = read_yaml(directory / "topics.yaml") or {}
    if set(topics) != set(TOPICS):
        raise KnowledgeError(f"topics.yaml must list exactly the {len(TOPICS)} topics of DESIGN.md")
    regions_path = directory / "regions.yaml"
    texts = read_yaml(directory / "texts.yaml") or {}
    missing = {"menu", "out_of_scope", "apology", "clarify"} - set(texts)
    if missing:
        raise KnowledgeError(f"texts.yaml lacks {sorted(missing)}")
    campaign_texts = _mapping(directory / "campaign_texts.yaml", fallback=_PACKAGED / "campaign_texts.yaml")
    return KnowledgeBase(
        directory=directory,
        topics=topics,
        entries=_policy_entries(directory),
        training_types=_catalogue(directory / "training_types.yaml"),
        job_types=_catalogue(directory / "job_types.yaml"),
        formats=_catalogue(directory / "event_formats.yaml"),
        regions=(read_yaml(regions_path) or {}) if regions_path.exists() else {},
        texts=texts,
        dialog_texts=_mapping(directory / "dialogs.yaml"),
        campaign_texts=campaign_texts,
    )


def _mapping(path: Path, *, fallback: Path | None = None) -> dict[str, Any]:
    # A custom knowledge folder without this file still gets the packaged one.
    if not path.exists() and fallback is not None:
        path = fallback
    doc = read_yaml(path) if path.exists() else {}
    if not isinstance(doc, dict):
        raise KnowledgeError(f"{path}: expected a mapping at the top level")
    return doc
