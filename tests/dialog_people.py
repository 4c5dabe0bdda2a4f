"""Scripted people: a simulated labourer who answers whatever the bot asks from their own facts.

Each conversation (one JSON object a line in tests/data/conversations_*.jsonl) is a person:

- `channel`: "simulator" (POST /api/simulator/message) or "sms" (POST /sms/inbound, Aliyun's push shape,
  from `phone`). Every message goes through the real endpoint of the real app on a real database.
- `opening`: the first message. `told`: the slots the person considers already said (in the opening or
  out of turn); being asked one of them again counts as an extra turn.
- `answers`: slot → what the person says when that slot is asked (a list: the next one on each re-ask,
  the last repeated). A slot not listed is answered "不晓得".
- `before`: slot → messages said when the slot is first asked, before the answer (a digression, a fact
  out of turn, a wandering remark). `expect_after_before` (optional, slot → substring): the bot's replies
  to a `before` message must contain it (the digression was answered).
- `confirm`: what the person says at the read-back, in order (corrections first, then 确认). Default
  ["确认"]. `readback`: substrings the last read-back must show.
- `expect`: the stored row's fields (`labourer.name`, `labourer.phone`, `labourer.id_number` for the
  registry entry). A value: equal; "~text": contains; "*": anything but empty; null: must be empty.
- `never`: field → substrings that must not be stored there (a value put in the wrong slot).
- `handoff` / `unsubscribed`: whether a hand-off request / an opt-out may exist afterwards (default false).
- `known` (optional, simulator only): {"name", "township"}: the person is already on the roster and bound to this chat.
- `events` (optional): [{"title", "training_type", "township", "capacity", "days"}] open for sign-up during this
  conversation (closed afterwards, so the next person's list is theirs alone).
- `prelude` (optional): messages said before `opening`, in order, whatever is asked (a registration made earlier,
  the events list asked for); each counts as a planned turn.
- kind "signup": the stored row is the person's sign-up, `event` (its title) and `status`; "我的登记" must list it
  (or, when its status is "cancelled" — 不去了 — must no longer list it).
  Any kind, after a `prelude` that changes a record from "我的登记", reads the person's latest row of that kind.

What is measured (`python -m tests.dialog_people FILE…`): finished (the row written and the dialog closed,
and "我的登记" lists it), slot accuracy (expected fields right), wrong slots (a value in a slot it does not
belong to, or a field that should be empty filled), lost values (a field expected filled left empty),
extra turns over the minimum (re-asks, slots asked again after being told, hand-off offers), and
violations (two numbered menus in one turn, a hand-off or opt-out nobody asked for).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from bot import pii
from bot.db import session_scope
from bot.models import Complaint, ConversationState, Event, Handoff, JobWish, Labourer, OutboundMessage, SignUp
from bot.models import TrainingNeed, WorkingAway
from tests.fakes.sms_gateways import aliyun_up

MAX_MESSAGES = 30
GIVE_UP = 4
KINDS = {"training": TrainingNeed, "job": JobWish, "complaint": Complaint, "working_away": WorkingAway, "signup": SignUp}
CONFIRM_STEP = "__confirm__"
_SEQUENCE = itertools.count(1)


def load(path: str | Path) -> list[dict[str, Any]]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip() and not line.lstrip().startswith("//")]


@dataclass
class Result:
    id: str
    finished: bool = False
    fields: int = 0
    correct: int = 0
    wrong_slot: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    extra_turns: int = 0
    messages: int = 0
    violations: list[str] = field(default_factory=list)
    transcript: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.finished and self.correct == self.fields and not self.violations and not self.wrong_slot


class Person:
    """Talks to the app through its endpoint and reads back what the conversation state says is pending."""

    def __init__(self, client: TestClient, convo: dict[str, Any], index: int) -> None:
        self.client, self.convo = client, convo
        self.app = client.app
        self.channel = convo.get("channel", "simulator")
        key = self.app.state.settings.data_key
        if self.channel == "sms":
            self.phone = convo["phone"]
            self.user_id = pii.lookup_hash(pii.normalize_phone(self.phone), key)
        else:
            self.user_id = f"person-{convo['id']}-{index}"

    def setup(self) -> list[int]:
        """The roster entry a known person has, and the events open for this conversation (their ids)."""
        made = []
        with session_scope(self.app.state.sessionmaker) as session:
            known = self.convo.get("known")
            if known:
                labourer = Labourer(name=known["name"], township=known.get("township"), county=known.get("county"))
                session.add(labourer)
                session.flush()
                session.add(ConversationState(channel=self.channel, user_id=self.user_id, labourer_id=labourer.id,
                                              slots={}, context={}))
            for e in self.convo.get("events") or ():
                event = Event(kind="training", title=e["title"], training_type=e.get("training_type"),
                              township=e.get("township"), venue=e.get("venue", "就业扶贫站"), capacity=e.get("capacity"),
                              starts_at=datetime.now(UTC) + timedelta(days=e.get("days", 5)))
                session.add(event)
                session.flush()
                made.append(event.id)
        return made

    def close_events(self, ids: list[int]) -> None:
        with session_scope(self.app.state.sessionmaker) as session:
            for event in session.scalars(select(Event).where(Event.id.in_(ids))):
                event.status = "cancelled"

    def say(self, text: str) -> list[dict[str, Any]]:
        if self.channel == "sms":
            before = {r.id for r in self._rows(OutboundMessage, OutboundMessage.user_id == self.user_id)}
            token = self.app.state.settings.sms_callback_token
            response = self.client.post("/sms/inbound", params={"token": token} if token else None,
                                        json=aliyun_up(self.phone, text, next(_SEQUENCE)))
            assert response.status_code == 200, response.text
            signature = f"【{self.app.state.settings.sms_signature}】"
            return [{"text": r.text.removeprefix(signature), "choices": []}
                    for r in self._rows(OutboundMessage, OutboundMessage.user_id == self.user_id) if r.id not in before]
        response = self.client.post("/api/simulator/message", json={"user": self.user_id, "text": text})
        assert response.status_code == 200, response.text
        return response.json()["replies"]

    def _rows(self, model: Any, *where: Any) -> list[Any]:
        with self.app.state.sessionmaker() as session:
            return list(session.scalars(select(model).where(*where).order_by(model.id)))

    def state(self) -> ConversationState | None:
        found = self._rows(ConversationState, ConversationState.channel == self.channel,
                           ConversationState.user_id == self.user_id)
        return found[0] if found else None

    def labourer(self) -> Labourer | None:
        state = self.state()
        if state is None or state.labourer_id is None:
            return None
        with self.app.state.sessionmaker() as session:
            labourer = session.get(Labourer, state.labourer_id)
            session.expunge_all()
            return labourer


def _menus(replies: Iterable[dict[str, Any]]) -> int:
    """Numbered lists in one turn's replies (the simulator returns choices; SMS renders them as "1. …")."""
    count = 0
    for reply in replies:
        if len(reply.get("choices") or ()) >= 2:
            count += 1
        elif not reply.get("choices") and "\n1. " in reply["text"] and "\n2. " in reply["text"]:
            count += 1
    return count


def _stored(person: Person, kind: str) -> dict[str, Any] | None:
    model = KINDS[kind]
    labourer = person.labourer()
    if kind == "signup":
        if labourer is None:
            return None
        with person.app.state.sessionmaker() as session:
            found = session.execute(select(SignUp, Event).join(Event, Event.id == SignUp.event_id)
                                    .where(SignUp.labourer_id == labourer.id).order_by(SignUp.id)).all()
        if not found:
            return None
        signup, event = found[-1]
        return {"event": event.title, "status": signup.status, "labourer.name": labourer.name,
                "labourer.phone": pii.decrypt(labourer.phone_enc, person.app.state.settings.data_key)
                if labourer.phone_enc else None}
    if kind == "complaint":
        rows = person._rows(Complaint, Complaint.channel == person.channel, Complaint.user_id == person.user_id)
    else:
        rows = person._rows(model, model.labourer_id == labourer.id) if labourer else []
    if not rows:
        return None
    row = rows[-1]
    values = {c.name: getattr(row, c.name) for c in model.__table__.columns}
    key = person.app.state.settings.data_key
    if kind == "complaint" and row.contact_phone_enc is not None:
        values["contact_phone"] = pii.decrypt(row.contact_phone_enc, key)
    if labourer is not None:
        values["labourer.name"] = labourer.name
        values["labourer.phone"] = pii.decrypt(labourer.phone_enc, key) if labourer.phone_enc else None
        values["labourer.id_number"] = pii.decrypt(labourer.id_number_enc, key) if labourer.id_number_enc else None
        values["labourer.township"] = labourer.township
        values["labourer.county"] = labourer.county
    return values


def _matches(expected: Any, actual: Any) -> bool:
    if expected is None:
        return actual in (None, "")
    if actual is None or actual == "":
        return False
    if expected == "*":
        return True
    if isinstance(expected, str) and expected.startswith("~"):
        return expected[1:] in str(actual)
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual or expected == actual
    return str(expected) == str(actual)


def run(client: TestClient, convo: dict[str, Any], index: int = 0) -> Result:
    person = Person(client, convo, index)
    result = Result(convo["id"])
    answers = {k: (v if isinstance(v, list) else [v]) for k, v in (convo.get("answers") or {}).items()}
    befores = {k: (v if isinstance(v, list) else [v]) for k, v in (convo.get("before") or {}).items()}
    expect_after = convo.get("expect_after_before") or {}
    confirm = list(convo.get("confirm") or ["确认"])
    told = set(convo.get("told") or ())
    asked: dict[str, int] = {}
    planned = 1  # the opening
    last_readback = ""

    def turn(text: str) -> list[dict[str, Any]]:
        replies = person.say(text)
        result.messages += 1
        result.transcript.append(("人", text))
        for reply in replies:
            result.transcript.append(("机", reply["text"]))
        if _menus(replies) > 1:
            result.violations.append(f"two menus after {text!r}")
        return replies

    events = person.setup()
    for said in convo.get("prelude") or ():
        planned += 1
        turn(said)
    replies = turn(convo["opening"])
    while result.messages < MAX_MESSAGES:
        state = person.state()
        step = state.step if state is not None and state.dialog else None
        if step is None:
            break
        offer = ((state.context or {}).get("dialog") or {}).get("offer")
        if offer == "handoff":
            result.extra_turns += 1
            replies = turn("接着填")
            continue
        if step == CONFIRM_STEP:
            last_readback = "\n".join(r["text"] for r in replies)
            if confirm:
                planned += 1
                replies = turn(confirm.pop(0))
            else:
                result.extra_turns += 1
                replies = turn("确认")
            continue
        if step.startswith("__"):  # the edit menu: the person named what to change, so this is a detour
            result.extra_turns += 1
            replies = turn("不改了")
            continue
        asked[step] = asked.get(step, 0) + 1
        if asked[step] > GIVE_UP:  # a real person stops trying after being asked the same thing this often
            result.violations.append(f"gave up: asked {step!r} {asked[step] - 1} times")
            break
        if asked[step] > 1 or step in told:
            result.extra_turns += 1
        else:
            planned += 1
        if befores.get(step):
            said = befores[step].pop(0)
            planned += 1
            replies = turn(said)
            wanted = expect_after.get(step)
            if wanted and not any(wanted in r["text"] for r in replies):
                result.violations.append(f"{said!r} not answered (no {wanted!r})")
            asked[step] -= 1  # the question is asked again after the detour: not a re-ask
            if asked[step] == 0:
                planned -= 1
            continue
        options = answers.get(step) or ["不晓得"]
        said = options.pop(0) if len(options) > 1 else options[0]
        told.discard(step)
        replies = turn(said)
    state = person.state()
    closed = state is None or not state.dialog
    stored = _stored(person, convo["kind"])
    if closed and stored is not None:
        listing = "\n".join(r["text"] for r in person.say("我的登记"))
        result.transcript.append(("人", "我的登记"))
        result.transcript.append(("机", listing))
        result.finished = True
        mark = {"training": stored.get("training_type"), "job": stored.get("job_type"),
                "complaint": stored.get("ticket_no"), "working_away": stored.get("place"),
                "signup": stored.get("event")}[convo["kind"]]
        if convo["kind"] == "signup" and stored.get("status") == "cancelled":
            if mark and str(mark) in listing:  # a cancelled sign-up is no longer offered to withdraw
                result.finished = False
                result.violations.append("我的登记 still lists the cancelled sign-up")
        elif mark and str(mark) not in listing:
            result.finished = False
            result.violations.append("我的登记 does not list it")
    person.close_events(events)
    for wanted in convo.get("readback") or ():
        if wanted not in last_readback:
            result.violations.append(f"read-back lacks {wanted!r}")
    expect = convo.get("expect") or {}
    for name, value in expect.items():
        result.fields += 1
        actual = (stored or {}).get(name)
        if stored is not None and _matches(value, actual):
            result.correct += 1
            continue
        result.mismatched.append(f"{name}: wanted {value!r}, stored {actual!r}")
        if stored is None:
            continue
        if value is None:
            result.wrong_slot.append(f"{name}={actual!r}")
        elif actual in (None, ""):
            result.lost.append(name)
    for name, words in (convo.get("never") or {}).items():
        actual = str((stored or {}).get(name) or "")
        for word in words:
            if word in actual:
                result.wrong_slot.append(f"{name} holds {word!r}")
    handoffs = person._rows(Handoff, Handoff.channel == person.channel, Handoff.user_id == person.user_id)
    if handoffs and not convo.get("handoff"):
        result.violations.append("hand-off request nobody asked for")
    labourer = person.labourer()
    state = person.state()
    opted_out = bool((state.context or {}).get("unsubscribed")) if state is not None else False
    if labourer is not None:
        opted_out = opted_out or not (labourer.subscribed_sms if person.channel == "sms" else labourer.subscribed_wechat)
    if opted_out and not convo.get("unsubscribed"):
        result.violations.append("unsubscribed without asking")
    result.extra_turns = max(result.extra_turns, result.messages - planned)
    return result


@dataclass
class Figures:
    conversations: int
    finished: int
    fields: int
    correct: int
    wrong_slots: int
    lost: int
    extra_turns: int
    violations: int
    all_right: int

    @property
    def completion(self) -> float:
        return self.finished / self.conversations if self.conversations else 0.0

    @property
    def accuracy(self) -> float:
        return self.correct / self.fields if self.fields else 0.0

    @property
    def extra_per_conversation(self) -> float:
        return self.extra_turns / self.conversations if self.conversations else 0.0

    def line(self, name: str) -> str:
        return (f"{name}: {self.conversations} conversations, finished {self.finished} ({self.completion:.0%}), "
                f"stored correctly {self.all_right}, slot accuracy {self.correct}/{self.fields} ({self.accuracy:.1%}), "
                f"wrong slots {self.wrong_slots}, lost values {self.lost}, "
                f"extra turns {self.extra_turns} ({self.extra_per_conversation:.2f}/conversation), "
                f"violations {self.violations}")


def figures(results: list[Result]) -> Figures:
    return Figures(
        conversations=len(results), finished=sum(r.finished for r in results),
        fields=sum(r.fields for r in results), correct=sum(r.correct for r in results),
        wrong_slots=sum(len(r.wrong_slot) for r in results), lost=sum(len(r.lost) for r in results),
        extra_turns=sum(r.extra_turns for r in results), violations=sum(len(r.violations) for r in results),
        all_right=sum(r.ok for r in results),
    )


def run_all(client: TestClient, convos: list[dict[str, Any]]) -> list[Result]:
    return [run(client, convo, i) for i, convo in enumerate(convos)]


def _app(database_url: str | None):  # noqa: ANN202
    from bot.app import create_app
    from bot.db import make_engine, migrate
    from bot.settings import Settings

    if database_url is not None and database_url.startswith("postgresql"):
        from tests.conftest import PgSchema  # a throwaway schema of its own, never the shared tables

        schema = PgSchema(database_url)
        database_url = schema.url
        settings = Settings(database_url=database_url, demo_data=False, log_json=False)
        app = create_app(settings, configure_logs=False)
        app.state.scratch_schema = schema
        return app
    if database_url is None:
        folder = Path(tempfile.mkdtemp(prefix="dialog-people-"))
        database_url = f"sqlite:///{folder / 'people.db'}"
    engine = make_engine(database_url)
    migrate(engine)
    engine.dispose()
    settings = Settings(database_url=database_url, demo_data=False, log_json=False)
    return create_app(settings, configure_logs=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--database-url", help="a migrated-or-empty SQLite database (default: a new file); a "
                        "PostgreSQL URL: a scratch schema there, dropped at the end")
    parser.add_argument("--show", action="store_true", help="print the transcript of every conversation not all right")
    parser.add_argument("--only", help="run only the conversation with this id")
    args = parser.parse_args(argv)
    app = _app(args.database_url)
    with TestClient(app) as client:
        for path in args.files:
            convos = [c for c in load(path) if not args.only or c["id"] == args.only]
            results = run_all(client, convos)
            for r in results:
                if not r.ok or args.only:
                    problems = r.mismatched + [f"wrong slot {w}" for w in r.wrong_slot] + r.violations
                    print(f"  {r.id}: finished={r.finished} extra={r.extra_turns} " + "; ".join(problems))
                    if args.show:
                        for who, text in r.transcript:
                            print(f"      {who}: {text}".replace("\n", " / "))
            print(figures(results).line(Path(path).name))
    app.state.engine.dispose()
    schema = getattr(app.state, "scratch_schema", None)
    if schema is not None:
        schema.drop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
