"""Officials' changes to the knowledge: stored in the database over the packaged files, versioned, checked.

An item is a policy entry (its questions, title, short answer, detail, source), a reply text (a sentence
of texts.yaml or dialogs.yaml, by dotted key) or a catalogue item (a training type, job type or training
format with its aliases). Each change is a new `knowledge_revision` row holding the item's whole new
value, with its author and time; the newest row per item is live, laid over the files by
`apply_overrides` when the snapshot is built (bot.snapshot), so knowledge/ stays the default. Undoing a
change is a new row carrying the value before it.

A change is checked before it is stored, by building the version it would make with the same checks
the files pass (bot.knowledge, the dialogs' texts): a refused change stores nothing and says why.
"""

from __future__ import annotations

import copy
import difflib
import re
import string
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, and_, func, select
from sqlalchemy.orm import Session

from bot.audit import audit
from bot.knowledge import (
    CATALOGUES,
    CatalogueItem,
    KnowledgeBase,
    KnowledgeError,
    PolicyEntry,
    check_entry,
    check_knowledge,
    make_entry,
    make_item,
)
from bot.models import ConversationState, KnowledgeRevision, Labourer, MessageLog
from bot.nlu.types import TOPICS

if TYPE_CHECKING:
    from bot.auth import Actor
    from bot.snapshot import KnowledgeStore

Item = tuple[str, str]  # (kind, key)
Overrides = Mapping[Item, dict[str, Any]]
KINDS = ("entry", "text", "catalogue")
# Reply texts officials may edit: the key's prefix and the KnowledgeBase field it reaches into
# (campaigns: the broadcast texts — sign-up instructions, time format, default templates, sign-up replies).
TEXT_SOURCES = {"texts": "texts", "dialogs": "dialog_texts", "campaigns": "campaign_texts"}
ENTRY_FIELDS = ("topic", "title", "questions", "answer", "detail", "source")
ITEM_FIELDS = ("name", "aliases", "category", "description")
ENTRY_ID = re.compile(r"^[a-z][a-z0-9_]{1,62}$")
MAX_QUESTIONS = 200
MAX_FIELD = 4000


# ---- reading and laying the overrides over the files ------------------------------------------------


class DatabaseRevisions:
    """The revision table as a source of the knowledge snapshot (bot.snapshot.Revisions)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def latest(self) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(select(func.max(KnowledgeRevision.id))).scalar()

    def overrides(self) -> dict[Item, dict[str, Any]]:
        with self.engine.connect() as conn:
            return live_overrides(conn)


def live_overrides(conn: Any) -> dict[Item, dict[str, Any]]:
    """The newest value of every changed item (items changed back to their default left out)."""
    newest = select(func.max(KnowledgeRevision.id)).group_by(KnowledgeRevision.kind, KnowledgeRevision.key)
    rows = conn.execute(select(KnowledgeRevision.kind, KnowledgeRevision.key, KnowledgeRevision.value)
                        .where(KnowledgeRevision.id.in_(newest)).order_by(KnowledgeRevision.id))
    return {(kind, key): value for kind, key, value in rows if value is not None}


def apply_overrides(kb: KnowledgeBase, overrides: Overrides) -> KnowledgeBase:
    """`kb` (the files) with the officials' changes laid over it, checked as the files are."""
    entries = dict(kb.entries)
    texts = {field_: copy.deepcopy(getattr(kb, field_)) for field_ in TEXT_SOURCES.values()}
    catalogues = {name: {item.name: item for item in getattr(kb, name)} for name in CATALOGUES}
    for (kind, key), value in overrides.items():
        where = f"knowledge change {kind} {key}"
        if kind == "entry":
            entry = make_entry(key, str(value.get("topic") or ""), value)
            check_entry(entry, where)
            entries[key] = entry
        elif kind == "text":
            source, path = split_text_key(key)
            _set_text(texts[TEXT_SOURCES[source]], path, value.get("text"), key)
        elif kind == "catalogue":
            name, item_name = split_catalogue_key(key)
            catalogues[name][item_name] = make_item({**value, "name": item_name})
        else:
            raise KnowledgeError(f"{where}: unknown kind", problem="unknown_kind", key=key)
    changed = replace(kb, entries=entries, **texts,
                      **{name: tuple(items.values()) for name, items in catalogues.items()})
    check_knowledge(changed)
    return changed


def split_text_key(key: str) -> tuple[str, list[str]]:
    source, _, path = key.partition(":")
    if source not in TEXT_SOURCES or not path:
        raise KnowledgeError(f"unknown text {key!r}", problem="unknown_text", key=key)
    return source, path.split(".")


def split_catalogue_key(key: str) -> tuple[str, str]:
    name, _, item = key.partition(":")
    if name not in CATALOGUES or not item.strip():
        raise KnowledgeError(f"unknown catalogue item {key!r}", problem="unknown_catalogue", key=key)
    return name, item.strip()


def placeholders(text: str) -> set[str]:
    try:
        return {name for _lit, name, _spec, _conv in string.Formatter().parse(text) if name is not None}
    except ValueError:  # an unmatched "{": the text could not be filled in
        return {"{"}


def _set_text(tree: dict[str, Any], path: list[str], text: Any, key: str) -> None:
    node: Any = tree
    for part in path[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    default = node.get(path[-1]) if isinstance(node, dict) else None
    if not isinstance(default, str):  # only sentences the files have: no new keys, no menus restructured
        raise KnowledgeError(f"unknown text {key!r}", problem="unknown_text", key=key)
    text = str(text or "").strip()
    if not text:
        raise KnowledgeError(f"text {key} is empty", problem="empty_text", key=key)
    unknown = placeholders(text) - placeholders(default)
    if unknown:  # the code fills only the names the default uses: another one would fail the reply
        raise KnowledgeError(f"text {key} uses unknown placeholders {sorted(unknown)}", problem="placeholders",
                             key=key, names="、".join("{" + n + "}" if n != "{" else "{" for n in sorted(unknown)),
                             allowed="、".join("{" + n + "}" for n in sorted(placeholders(default))) or "无")
    node[path[-1]] = text


# ---- what an item is, in a version -------------------------------------------------------------------


def entry_value(entry: PolicyEntry) -> dict[str, Any]:
    return {"topic": entry.topic, "title": entry.title, "questions": list(entry.questions), "answer": entry.answer,
            "detail": entry.detail, "source": entry.source}


def item_value_of(item: CatalogueItem) -> dict[str, Any]:
    return {"name": item.name, "aliases": list(item.aliases), "category": item.category or "",
            "description": item.description or ""}


def text_leaves(kb: KnowledgeBase) -> list[tuple[str, str]]:
    """Every editable sentence as (key, text), in file order."""
    found: list[tuple[str, str]] = []

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, str):
            found.append((prefix, node))
        elif isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if not prefix.endswith(":") else f"{prefix}{k}", v)

    for source, field_ in TEXT_SOURCES.items():
        walk(f"{source}:", getattr(kb, field_))
    return found


def value_in(kb: KnowledgeBase, item: Item) -> dict[str, Any] | None:
    """The item's value in `kb`, or None when it has no such item."""
    kind, key = item
    if kind == "entry":
        entry = kb.entries.get(key)
        return entry_value(entry) if entry else None
    if kind == "text":
        try:
            source, path = split_text_key(key)
        except KnowledgeError:
            return None
        node: Any = getattr(kb, TEXT_SOURCES[source])
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        return {"text": node} if isinstance(node, str) else None
    if kind == "catalogue":
        try:
            name, item_name = split_catalogue_key(key)
        except KnowledgeError:
            return None
        found = next((i for i in getattr(kb, name) if i.name == item_name), None)
        return item_value_of(found) if found else None
    return None


# ---- making a change ---------------------------------------------------------------------------------


def _texts(value: Any, split: str) -> list[str]:
    """A list of short texts, from a list or (as forms send them) one text with separators."""
    if isinstance(value, str):
        return re.split(split, value)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
        raise KnowledgeError("expected a list of texts", problem="invalid")
    return [str(v) for v in value]


def clean_entry(raw: Mapping[str, Any]) -> dict[str, Any]:
    questions = _texts(raw.get("questions"), r"\r?\n")  # one question a line, as the form sends them
    value = {
        "topic": str(raw.get("topic") or "").strip(),
        "title": str(raw.get("title") or "").strip(),
        "questions": list(dict.fromkeys(q.strip() for q in questions if q.strip())),
        "answer": " ".join(str(raw.get("answer") or "").split()),
        "detail": str(raw.get("detail") or "").strip(),
        "source": str(raw.get("source") or "").strip(),
    }
    if len(value["questions"]) > MAX_QUESTIONS:
        raise KnowledgeError(f"at most {MAX_QUESTIONS} questions", problem="too_many_questions", limit=MAX_QUESTIONS)
    if any(len(str(v)) > MAX_FIELD for v in value.values() if isinstance(v, str)) or \
            any(len(q) > 200 for q in value["questions"]):
        raise KnowledgeError("a field is too long", problem="field_too_long", limit=MAX_FIELD)
    return value


def clean_item(raw: Mapping[str, Any]) -> dict[str, Any]:
    aliases = _texts(raw.get("aliases"), r"[\n,，、]+")
    value = {"aliases": list(dict.fromkeys(a.strip() for a in aliases if a.strip())),
             "category": str(raw.get("category") or "").strip(),
             "description": str(raw.get("description") or "").strip()}
    if len(value["aliases"]) > MAX_QUESTIONS or any(len(a) > 32 for a in value["aliases"]):
        raise KnowledgeError("aliases too many or too long", problem="field_too_long", limit=32)
    return value


def clean_value(kind: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """A value as a form or API sent it, in the stored shape of its kind."""
    if any(isinstance(v, (dict, list)) for k, v in raw.items() if k not in ("questions", "aliases")):
        raise KnowledgeError("expected texts", problem="invalid")
    if kind == "entry":
        return clean_entry(raw)
    if kind == "catalogue":
        return clean_item(raw)
    return {"text": str(raw.get("text") or "").strip()}


def new_entry_id(kb: KnowledgeBase, topic: str) -> str:
    n = 1
    while f"{topic}_{n}" in kb.entries:
        n += 1
    return f"{topic}_{n}"


def check_item(store: KnowledgeStore, item: Item, value: dict[str, Any] | None) -> None:
    """Refuse (KnowledgeError) what could never be an item, before any version is built."""
    kind, key = item
    if kind not in KINDS:
        raise KnowledgeError(f"unknown kind {kind!r}", problem="unknown_kind", key=key)
    if kind == "entry" and not ENTRY_ID.match(key):
        raise KnowledgeError(f"entry id {key!r}: lower-case letters, digits, _", problem="bad_id", entry=key)
    if kind == "entry" and value is not None and value.get("topic") not in TOPICS:
        raise KnowledgeError(f"unknown topic {value.get('topic')!r}", problem="unknown_topic", entry=key,
                             topic=value.get("topic"))
    if kind == "text" and value_in(store.defaults(), item) is None:
        raise KnowledgeError(f"unknown text {key!r}", problem="unknown_text", key=key)
    if kind == "catalogue":
        split_catalogue_key(key)


def propose(session: Session, store: KnowledgeStore, actor: Actor, item: Item, value: dict[str, Any] | None, *,
            note: str | None = None, reverts: int | None = None) -> KnowledgeRevision:
    """Store `value` as the item's new value (None: back to the default), if the version it makes passes
    every check; else raise KnowledgeError and store nothing. Audited. Goes live in this process on
    `store.refresh()` after the commit, in the others at their next look."""
    check_item(store, item, value)
    draft = store.draft({item: value})  # raises with the reason
    kind, key = item
    before = value_in(store.current.kb, item)
    if value is not None and value_in(draft.kb, item) == before and reverts is None:
        raise KnowledgeError(f"{kind} {key}: nothing changed", problem="unchanged", key=key)
    revision = KnowledgeRevision(kind=kind, key=key, value=value, note=(note or "").strip()[:500] or None,
                                 reverts=reverts, author=actor.username, author_id=actor.id)
    session.add(revision)
    session.flush()
    audit(session, actor, "knowledge_reverted" if reverts else "knowledge_changed", object_type="knowledge",
          object_id=f"{kind}:{key}", detail={"revision": revision.id, **({"reverts": reverts} if reverts else {})})
    return revision


def value_before(session: Session, revision: KnowledgeRevision) -> dict[str, Any] | None:
    """The item's stored value just before `revision` (None: the default)."""
    return session.scalar(
        select(KnowledgeRevision.value)
        .where(KnowledgeRevision.kind == revision.kind, KnowledgeRevision.key == revision.key,
               KnowledgeRevision.id < revision.id)
        .order_by(KnowledgeRevision.id.desc()).limit(1))


def revert(session: Session, store: KnowledgeStore, actor: Actor, revision_id: int) -> KnowledgeRevision:
    """Undo one change: the item gets back the value it had before it (checked like any change)."""
    from bot.errors import NotFound

    revision = session.get(KnowledgeRevision, revision_id)
    if revision is None:
        raise NotFound("no such knowledge revision")
    return propose(session, store, actor, (revision.kind, revision.key), value_before(session, revision),
                   reverts=revision.id)


def history(session: Session, item: Item | None = None, *, limit: int = 200) -> list[KnowledgeRevision]:
    query = select(KnowledgeRevision).order_by(KnowledgeRevision.id.desc()).limit(limit)
    if item is not None:
        query = query.where(KnowledgeRevision.kind == item[0], KnowledgeRevision.key == item[1])
    return list(session.scalars(query))


# ---- diffs ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldDiff:
    name: str
    # For text: ("equal" | "delete" | "insert", characters) runs; for lists: items removed and added.
    runs: tuple[tuple[str, str], ...] = ()
    removed: tuple[str, ...] = ()
    added: tuple[str, ...] = ()


def diff(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[FieldDiff]:
    """What changed, field by field (only the fields that did); characters for text, items for lists."""
    before, after = before or {}, after or {}
    changes = []
    for name in dict.fromkeys([*before, *after]):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if isinstance(old, list) or isinstance(new, list):
            old_items, new_items = list(old or []), list(new or [])
            changes.append(FieldDiff(name, removed=tuple(i for i in old_items if i not in new_items),
                                     added=tuple(i for i in new_items if i not in old_items)))
            continue
        a, b = str(old or ""), str(new or "")
        runs: list[tuple[str, str]] = []
        for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
            if op == "equal":
                runs.append(("equal", a[i1:i2]))
            else:
                if i2 > i1:
                    runs.append(("delete", a[i1:i2]))
                if j2 > j1:
                    runs.append(("insert", b[j1:j2]))
        changes.append(FieldDiff(name, runs=tuple(runs)))
    return changes


# ---- what labourers asked that the knowledge lacks -----------------------------------------------------


LOW_CONFIDENCE = 0.6
UNANSWERED_SCAN = 5000  # newest messages read per look: a few days of a busy county
GROUP_SIMILARITY = 82  # rapidfuzz ratio at which two phrasings count as one question


@dataclass
class Unanswered:
    text: str  # the most recent phrasing (personal numbers already masked in the log)
    count: int
    last_at: datetime
    intents: dict[str, int] = field(default_factory=dict)
    topic: str | None = None
    examples: list[str] = field(default_factory=list)


def normalised(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).lower()
    return "".join(ch for ch in folded if unicodedata.category(ch)[0] not in "PZSC")


def unanswered(session: Session, actor: Actor, *, since: datetime, limit: int = 100) -> list[Unanswered]:
    """The messages of the last days the bot did not answer from the knowledge (out of scope, or a guess
    below LOW_CONFIDENCE), grouped by their normalised text and then by similarity, most asked first.
    A scoped official sees those of labourers registered in their area."""
    from rapidfuzz import fuzz, process

    from bot.scope import scope_where

    query = (
        select(MessageLog.text, MessageLog.intent, MessageLog.topic, MessageLog.created_at)
        .outerjoin(ConversationState, and_(ConversationState.channel == MessageLog.channel,
                                           ConversationState.user_id == MessageLog.user_id))
        .outerjoin(Labourer, Labourer.id == ConversationState.labourer_id)
        .where(MessageLog.created_at >= since, MessageLog.direction == "in", MessageLog.kind == "text",
               (MessageLog.intent == "out_of_scope") | (MessageLog.confidence < LOW_CONFIDENCE))
        .order_by(MessageLog.created_at.desc()).limit(UNANSWERED_SCAN)
    )
    by_text: dict[str, Unanswered] = {}
    for text, intent, topic, at in session.execute(scope_where(query, actor, Labourer)):
        key = normalised(text or "")
        if len(key) < 2:  # "?" and emoji say nothing the knowledge could answer
            continue
        group = by_text.get(key)
        if group is None:
            group = by_text[key] = Unanswered(text=text, count=0, last_at=at, topic=topic)
        group.count += 1
        group.intents[intent or "?"] = group.intents.get(intent or "?", 0) + 1
    merged: list[Unanswered] = []
    keys: list[str] = []
    for key, group in sorted(by_text.items(), key=lambda kv: (-kv[1].count, -kv[1].last_at.timestamp())):
        found = process.extractOne(key, keys, scorer=fuzz.ratio, score_cutoff=GROUP_SIMILARITY) if keys else None
        if found is None:
            group.examples = [group.text]
            merged.append(group)
            keys.append(key)
            continue
        into = merged[found[2]]
        into.count += group.count
        into.last_at = max(into.last_at, group.last_at)
        for intent, n in group.intents.items():
            into.intents[intent] = into.intents.get(intent, 0) + n
        if len(into.examples) < 5:
            into.examples.append(group.text)
    merged.sort(key=lambda g: (-g.count, -g.last_at.timestamp()))
    return merged[:limit]


def add_question(session: Session, store: KnowledgeStore, actor: Actor, entry_id: str, question: str) -> KnowledgeRevision:
    """A labourer's phrasing becomes one more question of an entry (one click from the unanswered list)."""
    entry = store.current.kb.entries.get(entry_id)
    if entry is None:
        raise KnowledgeError(f"no entry {entry_id}", problem="unknown_entry", entry=entry_id)
    question = " ".join(question.split())[:200]
    if question in entry.questions:
        raise KnowledgeError("already a question of this entry", problem="unchanged", key=entry_id)
    value = {**entry_value(entry), "questions": [*entry.questions, question]}
    return propose(session, store, actor, ("entry", entry_id), value, note=f"未答问题加为问法：{question}")
