"""Reads knowledge/ (data, not code) and validates it: a bad file is refused with the reason, at start-up or
when a new version is loaded into the running service (bot.snapshot).

The checks are functions over what was read (`check_entry`, `check_knowledge`), so the officials' edits
stored in the database (bot.knowledge_edits), laid over these files, pass exactly the same ones."""

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
    """A version of the knowledge refused. `problem` names the rule broken (the console says it in Chinese:
    templates/knowledge/_problem.html), `values` what it needs to say so; the message is for logs."""

    def __init__(self, message: str, *, problem: str = "invalid", **values: Any) -> None:
        super().__init__(message)
        self.problem = problem
        self.values = values


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


# The catalogues: the KnowledgeBase field and the file each is read from.
CATALOGUES = {"training_types": "training_types.yaml", "job_types": "job_types.yaml", "formats": "event_formats.yaml"}


def make_item(raw: dict[str, Any]) -> CatalogueItem:
    return CatalogueItem(
        name=str(raw["name"]).strip(),
        aliases=tuple(str(a).strip() for a in raw.get("aliases") or () if str(a).strip()),
        category=raw.get("category") or None,
        description=raw.get("description") or raw.get("explain") or None,
    )


def _catalogue(path: Path) -> tuple[CatalogueItem, ...]:
    if not path.exists():
        return ()
    return tuple(make_item(raw) for raw in read_yaml(path) or [])


def check_entry(entry: PolicyEntry, where: str) -> None:
    """The rules every policy entry follows, wherever it comes from (a file, an official's edit)."""
    if entry.topic not in TOPICS:
        raise KnowledgeError(f"{where}: unknown topic {entry.topic!r}", problem="unknown_topic", entry=entry.id,
                             topic=entry.topic)
    if not entry.title.strip():
        raise KnowledgeError(f"{where}: {entry.id} has no title", problem="no_title", entry=entry.id)
    if not entry.answer:
        raise KnowledgeError(f"{where}: {entry.id} has no answer", problem="no_answer", entry=entry.id)
    # The short answer is what an old phone gets: one SMS.
    if len(entry.answer) > SMS_ANSWER_LIMIT:
        raise KnowledgeError(f"{where}: {entry.id} answer is {len(entry.answer)} > {SMS_ANSWER_LIMIT} chars",
                             problem="answer_too_long", entry=entry.id, length=len(entry.answer),
                             limit=SMS_ANSWER_LIMIT)
    if not entry.questions or not all(q.strip() for q in entry.questions):
        raise KnowledgeError(f"{where}: {entry.id} has no questions", problem="no_questions", entry=entry.id)


def make_entry(entry_id: str, topic: str, raw: dict[str, Any]) -> PolicyEntry:
    return PolicyEntry(
        id=entry_id,
        topic=topic,
        title=str(raw.get("title") or "").strip(),
        questions=tuple(str(q).strip() for q in raw.get("questions") or ()),
        answer=" ".join(str(raw.get("answer") or "").split()),
        detail=str(raw.get("detail") or "").strip(),
        source=str(raw.get("source") or "").strip(),
    )


def _policy_entries(directory: Path) -> dict[str, PolicyEntry]:
    entries: dict[str, PolicyEntry] = {}
    for path in sorted((directory / "policies").glob("*.yaml")):
        doc = read_yaml(path) or {}
        topic = doc.get("topic")
        if topic not in TOPICS:
            raise KnowledgeError(f"{path}: unknown topic {topic!r}", problem="unknown_topic", entry=None, topic=topic)
        for raw in doc.get("entries") or []:
            entry = make_entry(raw["id"], topic, raw)
            if entry.id in entries:
                raise KnowledgeError(f"{path}: duplicate entry id {entry.id}", problem="duplicate_id", entry=entry.id)
            check_entry(entry, str(path))
            entries[entry.id] = entry
    return entries


REQUIRED_TEXTS = ("menu", "out_of_scope", "apology", "clarify")


def check_knowledge(kb: KnowledgeBase) -> None:
    """What must hold of a whole version (each entry was checked as it was read)."""
    if set(kb.topics) != set(TOPICS):
        raise KnowledgeError(f"topics.yaml must list exactly the {len(TOPICS)} topics of DESIGN.md",
                             problem="topics")
    missing = set(REQUIRED_TEXTS) - set(kb.texts)
    if missing:
        raise KnowledgeError(f"texts.yaml lacks {sorted(missing)}", problem="missing_text", key=sorted(missing)[0])


def load_knowledge(directory: Path) -> KnowledgeBase:
    """Everything in `directory`, checked. Raises KnowledgeError naming the file and the problem."""
    directory = Path(directory)
    if not directory.is_dir():
        raise KnowledgeError(f"knowledge directory not found: {directory} (set GONGYOU_KNOWLEDGE_DIR)")
    topics = read_yaml(directory / "topics.yaml") or {}
    regions_path = directory / "regions.yaml"
    texts = read_yaml(directory / "texts.yaml") or {}
    campaign_texts = _mapping(directory / "campaign_texts.yaml", fallback=_PACKAGED / "campaign_texts.yaml")
    kb = KnowledgeBase(
        directory=directory,
        topics=topics,
        entries=_policy_entries(directory),
        **{name: _catalogue(directory / file) for name, file in CATALOGUES.items()},
        regions=(read_yaml(regions_path) or {}) if regions_path.exists() else {},
        texts=texts,
        dialog_texts=_mapping(directory / "dialogs.yaml"),
        campaign_texts=campaign_texts,
    )
    check_knowledge(kb)
    return kb


def _mapping(path: Path, *, fallback: Path | None = None) -> dict[str, Any]:
    # A custom knowledge folder without this file still gets the packaged one.
    if not path.exists() and fallback is not None:
        path = fallback
    doc = read_yaml(path) if path.exists() else {}
    if not isinstance(doc, dict):
        raise KnowledgeError(f"{path}: expected a mapping at the top level")
    return doc
