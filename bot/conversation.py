"""The message pipeline every channel shares.

inbound → dedupe (platform message id) → conversation state → dialog in progress? → menu choice?
→ intent router → handler (first that accepts) → replies logged → channel renders them.
The inbound message is committed before anything else runs, so a failing handler never loses it.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot import dialogs, pii
from bot.channels.base import Choice, InboundMessage, Reply
from bot.db import dialect_insert, session_scope
from bot.intents import Handler, load_handlers
from bot.knowledge import KnowledgeBase, load_knowledge
from bot.models import ConversationState, Labourer, MessageLog, utcnow
from bot.nlu.router import Router, get_router
from bot.nlu.types import Parse
from bot.settings import Settings

log = logging.getLogger(__name__)

FALLBACK_CONFIDENCE = 0.5
MESSAGES = MessageLog.__table__  # Core statements: the log is written on every message, keep it lean
_DIGIT = re.compile(r"^\s*(\d{1,2})\s*[.。!！?？、]*\s*$")

# Checked before the menu and the intent router; each returns replies or None to pass. Registered by
# the areas that need one (scheduler.replies: "报名"/"1"/"不去了" answering a broadcast).
PRE_ROUTE_HOOKS: list[Callable[["Turn"], "list[Reply] | None"]] = []


@dataclass
class Services:
    """What a turn needs besides the database session; built once per app."""

    settings: Settings
    sessionmaker: sessionmaker[Session]
    kb: KnowledgeBase
    router: Router
    handlers: dict[str, Handler]

    @classmethod
    def build(cls, settings: Settings, factory: sessionmaker[Session]) -> "Services":
        dialogs.check(settings.knowledge_dir)
        return cls(
            settings=settings,
            sessionmaker=factory,
            kb=load_knowledge(settings.knowledge_dir),
            router=get_router(settings.knowledge_dir),
            handlers=load_handlers(),
        )


@dataclass
class Turn:
    session: Session
    message: InboundMessage
    state: ConversationState
    services: Services
    text: str = ""  # the message text as the NLU sees it (bounded)
    parse: Parse | None = None
    action: dict[str, Any] = field(default_factory=dict)  # set when a menu choice triggered the handler

    @property
    def kb(self) -> KnowledgeBase:
        return self.services.kb

    @property
    def settings(self) -> Settings:
        return self.services.settings

    def say(self, key: str, **values: Any) -> str:
        return self.kb.text(key, **values)

    def labourer(self) -> Labourer | None:
        if self.state.labourer_id is None:
            return None
        return self.session.get(Labourer, self.state.labourer_id)

    def run(self, intent: str, **action: Any) -> list[Reply]:
        """Hand the turn to another intent's handler (menus, fallbacks)."""
        self.action = {"intent": intent, **action}
        return self.services.handlers[intent](self) or []


@dataclass(frozen=True)
class Outcome:
    replies: list[Reply]
    duplicate: bool = False
    inbound_id: int | None = None


def handle_message(services: Services, message: InboundMessage) -> Outcome:
    """Process one inbound message in one transaction.

    The message is understood first (pure CPU, no lock held). The inbound row goes in with ON CONFLICT DO
    NOTHING: the unique key turns a platform retry into a no-op, across processes. The handler runs under a
    savepoint, so when it fails only its own writes are undone: the message stays logged (marked failed)
    and the person gets an apology.
    """
    text = "" if message.kind == "event" else _clean(message.text)[: services.settings.max_message_chars]
    parse = services.router.parse(text) if text else None
    with session_scope(services.sessionmaker) as session:
        inbound_id = _log_inbound(session, message, parse)
        if inbound_id is None:
            log.info("duplicate message ignored", extra={"channel": message.channel, "external_id": message.external_id})
            return Outcome(replies=[], duplicate=True)
        try:
            with session.begin_nested():
                state = _load_state(session, message)
                turn = Turn(session=session, message=message, state=state, services=services, text=text, parse=parse)
                replies = _respond(turn)
                _remember_menu(state, replies)
                _log_outbound(session, message, replies)
        except Exception as exc:  # a failing handler answers with an apology; the message stays logged
            log.exception("handler failed", extra={"channel": message.channel, "inbound_id": inbound_id})
            replies = [Reply(services.kb.text("apology"))]
            error = f"{type(exc).__name__}: {exc}"[:2000]
            session.execute(update(MESSAGES).where(MESSAGES.c.id == inbound_id).values(status="failed", error=error))
            _log_outbound(session, message, replies)
        return Outcome(replies=replies, inbound_id=inbound_id)


def _log_inbound(session: Session, message: InboundMessage, parse: Parse | None) -> int | None:
    """The new row's id, or None when this (channel, external_id) was seen before (a platform retry)."""
    understood = (
        {"intent": parse.intent, "confidence": parse.confidence, "topic": parse.topic, "entry_id": parse.entry_id}
        if parse is not None
        else {}
    )
    stmt = (
        dialect_insert(session, MESSAGES)
        .values(
            channel=message.channel,
            user_id=message.user_id,
            direction="in",
            external_id=message.external_id,
            kind=message.kind,
            text=_loggable(message.text),
            media_id=message.media_id,
            status="ok",
            created_at=message.received_at,
            **understood,
        )
        .on_conflict_do_nothing(index_elements=["channel", "direction", "external_id"])
        .returning(MESSAGES.c.id)
    )
    return session.execute(stmt).scalar_one_or_none()


def _load_state(session: Session, message: InboundMessage) -> ConversationState:
    query = select(ConversationState).where(
        ConversationState.channel == message.channel, ConversationState.user_id == message.user_id
    )
    state = session.scalars(query.with_for_update()).one_or_none()
    if state is not None:
        return state
    state = ConversationState(channel=message.channel, user_id=message.user_id, slots={}, context={})
    try:
        with session.begin_nested():
            session.add(state)
    except IntegrityError:  # another worker created it a moment ago
        state = session.scalars(query.with_for_update()).one()
    return state


def _respond(turn: Turn) -> list[Reply]:
    message = turn.message
    if message.kind == "event":
        return turn.run("welcome") if message.event == "subscribe" else _route_event_key(turn)
    if turn.state.dialog:
        replies = dialogs.continue_dialog(turn)
        if replies is not None:
            return replies
        replies = _route(turn)
        resume = dialogs.resume_prompt(turn)
        return replies + ([resume] if resume else [])
    return _route(turn)


def _route(turn: Turn) -> list[Reply]:
    if not turn.text:
        if turn.message.kind == "voice":  # no speech recognised; the media id is kept in the log
            return [Reply(turn.say("channels.voice_unclear"))]
        if turn.message.kind in ("image", "video", "link", "location"):
            return dialogs.receive_media(turn) or turn.run("help", reason="media")
        return turn.run("help", reason="empty")
    for hook in PRE_ROUTE_HOOKS:
        hooked = hook(turn)
        if hooked is not None:
            return hooked
    digit = _DIGIT.match(turn.text)
    if digit and turn.state.context.get("menu"):
        return _choose(turn, int(digit.group(1)))
    parse = turn.parse
    assert parse is not None
    if parse.ambiguous:
        return [_clarify(turn, parse)]
    # First handler that accepts wins; runners-up are tried only when they are plausible themselves.
    fallbacks = [c.intent for c in parse.ranking if c.intent != parse.intent and c.confidence >= FALLBACK_CONFIDENCE]
    for candidate in dict.fromkeys((parse.intent, *fallbacks)):
        handler = turn.services.handlers.get(candidate)
        if handler is None:
            continue
        turn.action = {"intent": candidate}
        replies = handler(turn)
        if replies is not None:
            return replies
    return turn.run("out_of_scope")


def _clarify(turn: Turn, parse: Parse) -> Reply:
    choices = []
    for cand in parse.ambiguous:
        if cand.entry_id and cand.entry_id in turn.kb.entries:
            label = turn.kb.entries[cand.entry_id].title
            choices.append(Choice(label, {"intent": "policy_entry", "entry": cand.entry_id}))
        else:
            label = turn.kb.text(f"intent_labels.{cand.intent}")
            choices.append(Choice(label, {"intent": cand.intent}))
    return Reply(turn.say("clarify"), tuple(choices))


def _choose(turn: Turn, number: int) -> list[Reply]:
    menu = turn.state.context.get("menu") or []
    if not 1 <= number <= len(menu):
        return [Reply(turn.say("choice_unknown"), tuple(Choice(**c) for c in menu))]
    action = dict(menu[number - 1]["action"])
    return turn.run(action.pop("intent"), **action)


def _route_event_key(turn: Turn) -> list[Reply]:
    key = (turn.message.event_key or "").strip()
    if turn.message.event == "CLICK" and key in turn.services.handlers:
        return turn.run(key)
    return []


def _remember_menu(state: ConversationState, replies: list[Reply]) -> None:
    menu = next((r.choices for r in reversed(replies) if r.choices), ())
    context = dict(state.context or {})
    context["menu"] = [{"label": c.label, "action": c.action} for c in menu]
    state.context = context  # reassign: JSON columns only notice a new object


def _log_outbound(session: Session, message: InboundMessage, replies: list[Reply]) -> None:
    if not replies:
        return
    now = utcnow()
    rows = [
        {"channel": message.channel, "user_id": message.user_id, "direction": "out", "kind": "text",
         "text": _loggable(reply.plain_text()), "status": "sent", "created_at": now}
        for reply in replies
    ]
    session.execute(insert(MESSAGES), rows)


def _loggable(text: str) -> str:
    # ID numbers and phones are masked in the log (the dialogs keep them encrypted where they belong);
    # PostgreSQL text cannot hold NUL, which carries nothing a person wrote.
    return pii.redact(text.replace("\x00", ""))


def _clean(text: str) -> str:
    # Control characters (other than newlines) carry nothing and upset XML and terminals.
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C").strip()
