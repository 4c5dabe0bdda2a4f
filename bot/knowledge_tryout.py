""""试一试": what the bot makes of a question, and why, and the reply exactly as a labourer would get it.

The understanding is the router's own (`Router.parse`: intent, topic, entry, confidence, ranking,
entities, tokens); the cues that fired are found by running the router's loaded cue patterns over the
normalised text here, so the explanation never needs a change in bot/nlu. The reply comes from the real
pipeline (bot.conversation.handle_message) run as a dry run: a fresh conversation in a transaction that
is rolled back, nothing sent after it — never a labourer's data touched. Any snapshot can be tried: the
live one, or a draft (bot.snapshot.KnowledgeStore.draft) before an edit is stored.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, replace
from typing import Any

from rapidfuzz import fuzz, process

from bot.channels import sms
from bot.channels.base import Address, InboundMessage, Reply
from bot.conversation import Services, handle_message
from bot.knowledge import PolicyEntry
from bot.nlu.types import Parse
from bot.snapshot import Snapshot

MAX_TRY_CHARS = 500
NEAREST = 3


@dataclass(frozen=True)
class CueHit:
    intent: str
    topic: str | None
    weight: float
    pattern: str
    matched: str  # the words of the message that matched
    excluded: bool  # its "unless" pattern matched too: it did not count


@dataclass(frozen=True)
class SmsPart:
    text: str
    segments: int


@dataclass(frozen=True)
class Tryout:
    text: str
    version: str
    parse: Parse
    entry: PolicyEntry | None
    cues: list[CueHit]
    nearest: list[tuple[str, str, float]]  # (entry id, question, similarity 0–100)
    replies: list[Reply]
    wechat: list[str]  # each message as WeChat shows it
    sms: list[SmsPart]  # each message as the phone shows it, with its length in SMS segments


class _Pinned:
    """A knowledge store that always answers with one snapshot (what the dry run is tried against)."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.current = snapshot
        self.last_error: str | None = None


def cue_hits(router: Any, normalized: str) -> list[CueHit]:
    hits = []
    for cue in getattr(router, "cues", ()):
        pattern = getattr(cue, "pattern", None)
        found = pattern.search(normalized) if pattern is not None else None
        if found is None:
            continue
        unless = getattr(cue, "unless", None)
        hits.append(CueHit(intent=cue.intent, topic=getattr(cue, "topic", None), weight=float(cue.weight),
                           pattern=pattern.pattern, matched=found.group(0),
                           excluded=bool(unless is not None and unless.search(normalized))))
    return sorted(hits, key=lambda h: (h.excluded, -h.weight))


def nearest_questions(snapshot: Snapshot, text: str) -> list[tuple[str, str, float]]:
    phrasings = [(e.id, q) for e in snapshot.kb.entries.values() for q in (e.title, *e.questions)]
    found = process.extract(text, [q for _id, q in phrasings], scorer=fuzz.WRatio, limit=NEAREST)
    return [(phrasings[i][0], q, round(score, 1)) for q, score, i in found]


def try_message(services: Services, text: str, *, snapshot: Snapshot | None = None) -> Tryout:
    snapshot = snapshot or services.knowledge.current
    text = text.strip()[:MAX_TRY_CHARS]
    parse = snapshot.router.parse(text)
    pinned = replace(services, knowledge=_Pinned(snapshot))  # type: ignore[arg-type]
    # A fresh conversation each time, in the simulator's namespace: it never resolves to a labourer.
    message = InboundMessage(Address("simulator", f"console-try-{uuid.uuid4().hex[:12]}"), text=text)
    replies = handle_message(pinned, message, dry_run=True).replies
    suffix = snapshot.kb.text("channels.sms_opt_out_suffix")
    phone = [sms.render(services.settings, r.plain_text(), purpose=sms.ESSENTIAL, opt_out_suffix=suffix)
             for r in replies]
    return Tryout(
        text=text, version=snapshot.version, parse=parse,
        entry=snapshot.kb.entries.get(parse.entry_id or ""),
        cues=cue_hits(snapshot.router, parse.normalized),
        nearest=nearest_questions(snapshot, text) if text else [],
        replies=replies, wechat=[r.plain_text() for r in replies],
        sms=[SmsPart(t, sms.segments(t)) for t in phone],
    )


def as_api(result: Tryout) -> dict[str, Any]:
    return {
        "text": result.text,
        "knowledge_version": result.version,
        "parse": result.parse.as_api(),
        "entry": {"id": result.entry.id, "title": result.entry.title} if result.entry else None,
        "cues": [asdict(c) for c in result.cues],
        "nearest": [{"entry_id": e, "question": q, "similarity": s} for e, q, s in result.nearest],
        "wechat": result.wechat,
        "sms": [{"text": p.text, "segments": p.segments} for p in result.sms],
    }
