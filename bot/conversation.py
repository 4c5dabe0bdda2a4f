"""The message pipeline every channel shares.

inbound → dedupe (platform message id) → conversation state → dialog in progress? → menu choice?
→ intent router → handler (first that accepts) → replies logged → channel renders them.
The inbound message is committed before anything else runs, so a failing handler never loses it.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from types import MappingProxyType
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, insert, select, update
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from bot import dialogs, pii
from bot.channels.base import Choice, InboundMessage, Reply
from bot.db import dialect_insert
from bot.dialogs.engine import Dialog
from bot.dialogs.validators import ordinal
from bot.intents import Handler, merge_handlers
from bot.knowledge import KnowledgeBase
from bot.knowledge_edits import DatabaseRevisions
from bot.metrics import Observer
from bot.models import ConversationState, Labourer, MessageLog, utcnow
from bot.nlu.router import Router
from bot.nlu.types import Parse
from bot.registry import Identity, bind_channel, resolve_labourer
from bot.settings import Settings
from bot.snapshot import KnowledgeStore, Snapshot

log = logging.getLogger(__name__)

FALLBACK_CONFIDENCE = 0.5
# The pipeline's own rows (the log, the state) are written with Core statements built once: they run on
# every message, and the ORM's unit of work costs several times the statement itself.
MESSAGES = MessageLog.__table__
STATES = ConversationState.__table__
STATE_FIELDS = ("labourer_id", "dialog", "step", "slots", "context")
_DIGIT = re.compile(r"^\s*(\d{1,2})\s*[.。!！?？、]*\s*$")

# Checked before the menu and the intent router; returns replies, or None to pass.
PreRouteHook = Callable[["Turn"], "list[Reply] | None"]
# What must be recorded about the sender in the message's own transaction, right after the inbound row
# (a platform retry skips it): WeChat's following and customer-service window.
OnLogged = Callable[[Connection, InboundMessage], None]


@dataclass
class Services:
    """What a turn needs besides the database session. Assembled once per process, in one place
    (bot.app.compose), from explicit lists: nothing registers itself on import."""

    settings: Settings
    sessionmaker: sessionmaker[Session]
    knowledge: KnowledgeStore
    handlers: Mapping[str, Handler]
    dialogs: Mapping[str, Dialog]
    pre_route: tuple[PreRouteHook, ...] = ()
    on_logged: Mapping[str, OnLogged] = field(default_factory=dict)
    # Told of every message answered and every send (bot.metrics: counters and the request's log lines).
    observer: Observer = field(default_factory=Observer)
    # The one table of broadcast senders, channel → sender (scheduler.senders), built once with these services.
    senders: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings, factory: sessionmaker[Session], *, handlers: Iterable[Mapping[str, Handler]],
              dialogs: Iterable[Dialog], pre_route: Iterable[PreRouteHook] = (),
              on_logged: Mapping[str, OnLogged] | None = None, observer: Observer | None = None,
              senders: Mapping[str, Callable[["Services"], Any]] | None = None) -> "Services":
        """Check the parts fit before anything runs: every intent has exactly one handler, dialog names are
        unique, and the knowledge has every text the dialogs use (a bad part fails start-up, not a chat).
        `senders` maps each channel to what builds its sender from the finished services."""
        by_name = _dialogs_by_name(dialogs)
        knowledge = KnowledgeStore(settings.knowledge_dir, checks=(partial(dialog_checks, by_name),),
                                   revisions=DatabaseRevisions(factory.kw["bind"]),
                                   max_age=settings.knowledge_poll_seconds)
        services = cls(settings=settings, sessionmaker=factory, knowledge=knowledge, handlers=merge_handlers(handlers),
                       dialogs=by_name, pre_route=tuple(pre_route), on_logged=dict(on_logged or {}),
                       observer=observer or Observer())
        services.senders = MappingProxyType({channel: make(services) for channel, make in (senders or {}).items()})
        return services

    @property
    def engine(self) -> Engine:
        return self.sessionmaker.kw["bind"]

    @property
    def kb(self) -> KnowledgeBase:
        return self.knowledge.current.kb

    @property
    def router(self) -> Router:
        return self.knowledge.current.router


def _dialogs_by_name(declared: Iterable[Dialog]) -> dict[str, Dialog]:
    found: dict[str, Dialog] = {}
    for dialog in declared:
        if dialog.name in found:
            raise ValueError(f"two dialogs named {dialog.name!r}")
        found[dialog.name] = dialog
    return found


def dialog_checks(declared: Mapping[str, Dialog], kb: KnowledgeBase) -> None:
    dialogs.check(declared.values(), kb.dialog_texts)


class Turn:
    """One message being answered. `session` is the ORM session handlers use; the pipeline opens it (inside
    a savepoint of the message's transaction) only when a handler first asks for it, so the common answers
    (policy, menus) cost no savepoint and no unit of work. `knowledge` is the snapshot the message was
    understood with: the whole turn answers from it, even if a newer one goes live meanwhile."""

    def __init__(self, work: "_Work", message: InboundMessage, state: ConversationState, services: Services, *,
                 knowledge: Snapshot, text: str = "", parse: Parse | None = None) -> None:
        self._work = work
        self.message = message
        self.state = state
        self.services = services
        self.knowledge = knowledge
        self.text = text  # the message text as the NLU sees it (bounded)
        self.parse = parse
        self.action: dict[str, Any] = {}  # set when a menu choice triggered the handler
        self._identity: Identity | None = None

    @property
    def session(self) -> Session:
        return self._work.session()

    @property
    def kb(self) -> KnowledgeBase:
        return self.knowledge.kb

    @property
    def settings(self) -> Settings:
        return self.services.settings

    def say(self, key: str, **values: Any) -> str:
        return self.kb.text(key, **values)

    def identity(self) -> Identity:
        """Who is writing (bot.registry.resolve_labourer), found once per turn; a person found by their
        address is bound to this conversation from now on."""
        if self._identity is None:
            found = resolve_labourer(self.session, self.message.address, bound_id=self.state.labourer_id)
            if found.labourer is not None and self.state.labourer_id != found.labourer.id:
                bind_channel(self.session, found.labourer, self.state)
            self._identity = found
        return self._identity

    def labourer(self) -> Labourer | None:
        return self.identity().labourer

    def bind(self, labourer: Labourer) -> None:
        """The person said who they are (a dialog matched or registered them): this conversation is theirs."""
        bind_channel(self.session, labourer, self.state, shared=bool(self.identity().sharing))
        self._identity = Identity(labourer)

    def run(self, intent: str, **action: Any) -> list[Reply]:
        """Hand the turn to another intent's handler (menus, fallbacks)."""
        self.action = {"intent": intent, **action}
        return self.services.handlers[intent](self) or []

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run `action` once the message's transaction has committed, never if the turn fails: for work that
        must not hold the transaction (and on SQLite the writer lock) open, such as a call to a provider, and
        that must not happen for changes that are then undone. It gets no session: it opens its own."""
        self._work.after_commit.append(action)


@dataclass(frozen=True)
class Outcome:
    replies: list[Reply]
    duplicate: bool = False
    inbound_id: int | None = None
    intent: str | None = None  # the handler that answered (or the dialog), for the metrics


class _Work:
    """The message's transaction: a Core connection for the pipeline's rows, and the handlers' ORM session
    joined to it under a savepoint, opened on first use. `undo()` rolls back to that savepoint: a failing
    handler's writes go, the inbound row stays."""

    def __init__(self, services: Services, conn: Connection) -> None:
        self.services, self.conn = services, conn
        self._session: Session | None = None
        self._savepoint: SessionTransaction | None = None
        self.after_commit: list[Callable[[], None]] = []

    def session(self) -> Session:
        if self._session is None:
            # rollback_only: committing this session never commits the message's transaction. The explicit
            # savepoint is what undo() rolls back to, and makes handlers see a nested transaction, in which
            # send_recorded refuses to call a provider (Turn.after_commit is the way).
            self._session = self.services.sessionmaker(bind=self.conn, join_transaction_mode="rollback_only")
            self._savepoint = self._session.begin_nested()
        return self._session

    def flush(self) -> None:
        if self._session is not None:
            self._session.flush()

    def keep(self) -> None:
        if self._savepoint is not None and self._savepoint.is_active:
            self._savepoint.commit()  # RELEASE SAVEPOINT

    def undo(self) -> None:
        if self._savepoint is not None and self._savepoint.is_active:
            self._savepoint.rollback()
        self.after_commit.clear()
        self.close()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = self._savepoint = None


def handle_message(services: Services, message: InboundMessage, *,
                   defer: Callable[[Callable[[], None]], Any] | None = None, dry_run: bool = False) -> Outcome:
    """Process one inbound message in one transaction (one commit).

    The message is understood first (pure CPU, no lock held). The inbound row goes in with ON CONFLICT DO
    NOTHING: the unique key turns a platform retry into a no-op, across processes. The handler's database
    writes run under a savepoint and the state is written back after it, so when it fails only its own
    writes are undone: the message stays logged (marked failed) and the person gets an apology.

    What the handler left for after the commit (`Turn.after_commit`) runs once it is committed: handed to
    `defer` (a channel's thread pool) when given, else here, before returning.

    `dry_run`: the same turn, rolled back at the end — no message, state or handler write is kept and
    nothing is sent after it (the console's "试一试" answers exactly as a labourer would be answered).
    """
    outcome, after = _handle(services, message, dry_run=dry_run)
    if not dry_run:
        services.observer.handled(message, outcome)
    for action in after:
        guarded = partial(_run_after_commit, action)
        if defer is None:
            guarded()
        else:
            defer(guarded)
    return outcome


def _run_after_commit(action: Callable[[], None]) -> None:
    try:
        action()
    except Exception:  # the message is answered and committed; what followed it only logs
        log.exception("after-commit action failed")


def _handle(services: Services, message: InboundMessage, *,
            dry_run: bool = False) -> tuple[Outcome, list[Callable[[], None]]]:
    knowledge = services.knowledge.current
    text = "" if message.kind == "event" else _clean(message.text)[: services.settings.max_message_chars]
    parse = knowledge.router.parse(text) if text else None
    statements = _statements(services.engine)
    with services.engine.begin() as conn:
        inbound_id = _log_inbound(conn, statements, message, parse)
        if inbound_id is None:
            log.info("duplicate message ignored", extra={"channel": message.channel, "external_id": message.external_id})
            return Outcome(replies=[], duplicate=True), []
        on_logged = services.on_logged.get(message.channel)
        if on_logged is not None:
            on_logged(conn, message)
        work = _Work(services, conn)
        intent = parse.intent if parse else None
        try:
            state, loaded = _load_state(conn, statements, message)
            turn = Turn(work, message, state, services, knowledge=knowledge, text=text, parse=parse)
            in_dialog = state.dialog
            replies = _respond(turn)
            intent = turn.action.get("intent") or (f"dialog:{in_dialog}" if in_dialog else intent)
            _remember_menu(state, replies)
            outbound = _outbound_rows(message, replies)
            work.flush()
            # Inside the handler's savepoint when it opened one: a failure from here on undoes it all.
            _save_state(conn, statements, state, loaded)
            _log_outbound(conn, statements, outbound)
            work.keep()
        except Exception as exc:  # a failing handler answers with an apology; the message stays logged
            log.exception("handler failed", extra={"channel": message.channel, "inbound_id": inbound_id})
            work.undo()
            intent = "failed"
            replies = [Reply(knowledge.kb.text("apology"))]
            error = f"{type(exc).__name__}: {exc}"[:2000]
            conn.execute(update(MESSAGES).where(MESSAGES.c.id == inbound_id).values(status="failed", error=error))
            _log_outbound(conn, statements, _outbound_rows(message, replies))
        finally:
            work.close()
        if dry_run:
            conn.rollback()
            return Outcome(replies=replies), []
    return Outcome(replies=replies, inbound_id=inbound_id, intent=intent), work.after_commit


@dataclass(frozen=True)
class _Statements:
    log_inbound: Any
    load_state: Any
    create_state: Any
    save_state: Any
    log_outbound: Any


_STATEMENTS: dict[str, _Statements] = {}


def _statements(engine: Engine) -> _Statements:
    """Built once per dialect and reused: they run on every message, and building them (the dialect's
    INSERT … ON CONFLICT … RETURNING) would cost each time. The compiled SQL SQLAlchemy caches itself."""
    name = engine.dialect.name
    found = _STATEMENTS.get(name)
    if found is None:
        columns = [STATES.c.id, *(STATES.c[f] for f in STATE_FIELDS), STATES.c.updated_at]
        key = (STATES.c.channel == bindparam("channel")) & (STATES.c.user_id == bindparam("user_id"))
        found = _STATEMENTS[name] = _Statements(
            log_inbound=dialect_insert(engine, MESSAGES)
            .on_conflict_do_nothing(index_elements=["channel", "direction", "external_id"])
            .returning(MESSAGES.c.id),
            # FOR UPDATE (PostgreSQL): one person's messages are answered one after the other.
            load_state=select(*columns).where(key).with_for_update(),
            create_state=dialect_insert(engine, STATES)
            .on_conflict_do_nothing(index_elements=["channel", "user_id"])
            .returning(*columns),
            save_state=update(STATES).where(STATES.c.id == bindparam("state_id")),
            log_outbound=insert(MESSAGES),
        )
    return found


def _log_inbound(conn: Connection, statements: _Statements, message: InboundMessage, parse: Parse | None) -> int | None:
    """The new row's id, or None when this (channel, external_id) was seen before (a platform retry)."""
    row = {
        "channel": message.channel,
        "user_id": message.user_id,
        "direction": "in",
        "external_id": message.external_id,
        "kind": message.kind,
        "text": _loggable(message.text),
        "media_id": message.media_id,
        "status": "ok",
        "created_at": message.received_at,
        "intent": parse.intent if parse else None,
        "confidence": parse.confidence if parse else None,
        "topic": parse.topic if parse else None,
        "entry_id": parse.entry_id if parse else None,
    }
    return conn.execute(statements.log_inbound, row).scalar_one_or_none()


def _load_state(conn: Connection, statements: _Statements, message: InboundMessage) -> tuple[ConversationState, dict[str, Any]]:
    """The person's state (created on first contact) as a detached ConversationState, and the values read,
    to write back only what the turn changed."""
    key = {"channel": message.channel, "user_id": message.user_id}
    row = conn.execute(statements.load_state, key).one_or_none()
    if row is None:
        row = conn.execute(statements.create_state, {**key, "slots": {}, "context": {}, "updated_at": utcnow()}).one_or_none()
        if row is None:  # another worker created it a moment ago
            row = conn.execute(statements.load_state, key).one()
    values = row._asdict()
    return ConversationState(**key, **values), values


def _save_state(conn: Connection, statements: _Statements, state: ConversationState, loaded: dict[str, Any]) -> None:
    # As the ORM would: only changed fields, and updated_at moves only when something changed.
    changes = {f: getattr(state, f) for f in STATE_FIELDS if getattr(state, f) != loaded[f]}
    if changes:
        conn.execute(statements.save_state, {"state_id": loaded["id"], **changes, "updated_at": utcnow()})


def _respond(turn: Turn) -> list[Reply]:
    message = turn.message
    if message.kind == "event":
        return turn.run("welcome") if message.event == "subscribe" else _route_event_key(turn)
    number = _typed_choice(turn)
    if number is not None:  # the label of a choice just offered, typed out: read exactly as its number
        turn.text = str(number)
        turn.parse = turn.knowledge.router.parse(turn.text)
    if turn.state.dialog:
        replies = dialogs.continue_dialog(turn)
        if replies is not None:
            return replies
        return dialogs.after_digression(turn, _route(turn))
    return _route(turn)


def _pre_route(turn: Turn) -> list[Reply] | None:
    for hook in turn.services.pre_route:
        hooked = hook(turn)
        if hooked is not None:
            return hooked
    return None


def _route(turn: Turn) -> list[Reply]:
    if not turn.text:
        if turn.message.kind in ("image", "voice", "video", "link", "location"):
            # The hooks first (a case the desk is handling takes it), then a dialog that collects evidence.
            taken = _pre_route(turn)
            if taken is None and turn.message.kind != "voice":
                taken = dialogs.receive_media(turn)
            if taken is not None:
                return taken
        if turn.message.kind == "voice":  # no speech recognised; the media id is kept in the log
            return [Reply(turn.say("channels.voice_unclear"))]
        if turn.message.kind in ("image", "video", "link", "location"):
            return turn.run("help", reason="media")
        return turn.run("help", reason="empty")
    hooked = _pre_route(turn)
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


# Said around a label typed out (接着填吧, 选修改): the label is still all the message says.
_AROUND_LABEL = re.compile(r"^(?:我选|选|我要|就)?(.+?)(?:吧|嘛|哈|嘞|哦|啊|呀|噻|撒|呢)*$")
_LABEL_PUNCT = re.compile(r"[\s\W_]+")


def _typed_choice(turn: Turn) -> int | None:
    """The number of the choice whose label the message is (接着填 to 1. 转人工 2. 接着填 is 2): a button's
    words typed out must never be read as a question or an answer to something else."""
    menu = turn.state.context.get("menu") if turn.state.context else None
    if not menu or not turn.text or _DIGIT.match(turn.text):
        return None
    said = _LABEL_PUNCT.sub("", turn.text)
    found = _AROUND_LABEL.match(said)
    candidates = {said, found.group(1)} if found else {said}
    for number, choice in enumerate(menu, 1):
        if _LABEL_PUNCT.sub("", str(choice.get("label") or "")) in candidates:
            return number
    # 第二个, 最后那个, 我选第三个吧: a place in the list is its number
    return next((n for n in map(partial(ordinal, count=len(menu)), candidates) if n is not None), None)


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


def _outbound_rows(message: InboundMessage, replies: list[Reply]) -> list[dict[str, Any]]:
    now = utcnow()
    return [
        {"channel": message.channel, "user_id": message.user_id, "direction": "out", "kind": "text",
         "text": _loggable(reply.plain_text()), "status": "sent", "created_at": now}
        for reply in replies
    ]


def _log_outbound(conn: Connection, statements: _Statements, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(statements.log_outbound, rows[0] if len(rows) == 1 else rows)


def _loggable(text: str) -> str:
    # ID numbers and phones are masked in the log (the dialogs keep them encrypted where they belong);
    # PostgreSQL text cannot hold NUL, which carries nothing a person wrote.
    return pii.redact(text.replace("\x00", ""))


def _clean(text: str) -> str:
    # Control characters (other than newlines) carry nothing and upset XML and terminals.
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C").strip()
