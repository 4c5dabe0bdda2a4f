"""my_records: what this person registered and where each stands — training needs, job wishes, working
away, complaints (with their latest public reply) and event sign-ups — each training need, job wish and
sign-up offered to change or withdraw.

"我之前报的电焊，时间要改一下" changes that record directly: the registration dialog reopens with its
answers and asks only the slot named (or, when the message gives the new value, 要改成开春, reads it back).
The pre-route hook `change_stated` does the same whatever the router made of such a message. Changing a complaint is the help desk's (the person replies there).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from bot import dialogs, signups
from bot.channels.base import Choice, Reply
from bot.conversation import Turn
from bot.dialogs.validators import compact
from bot.models import Event, JobWish, SignUp, TrainingNeed, utcnow
from bot.nlu.entities import match_job_type, match_training_type
from bot.registry import list_records

CHANGE = re.compile(r"(改|换成|变成|调整|更新|搞错|弄错|写错|说错|填错|错了|写少|写多|不对)")
# What names one of the person's records without its trade (我之前报的…, 登记的那个找工作)
RECORD_WORDS = re.compile(r"(培训|求职|找工作|报的|报名的|登记的|登记过)")
WITHDRAW = re.compile(r"(撤回|撤销|撤了|撤掉|删了|删掉|删除|作废|不想学了|不学了|不去学了|不报了|不找了|不想找了|不找工作了|不想找工作了|"
                      r"不要了|取消)")
CHANGEABLE = ("open",)  # a need already arranged or a wish already matched goes through the assistant


def _texts(turn: Turn) -> dict[str, Any]:
    return turn.kb.dialog_texts["my_records"]


def _signups(turn: Turn, labourer_id: int) -> list[tuple[SignUp, Event]]:
    rows = turn.session.execute(
        select(SignUp, Event).join(Event, Event.id == SignUp.event_id)
        .where(SignUp.labourer_id == labourer_id, SignUp.status.in_(("registered", "waitlisted")), Event.starts_at > utcnow())
        .order_by(Event.starts_at)
    ).all()
    return [(s, e) for s, e in rows]


# "我想投诉", "我要报名学电焊": a registration to make, not one made — declined, so the router's runner-up
# (the complaint, the training registration) answers it.
TO_MAKE = re.compile(r"^(我想|我要|想|要|帮我|我需要)(投诉|报名|报个名|登记|找工作|学|维权)")
ABOUT_MADE = re.compile(r"(查|我的|的事|进展|进度|结果|没得|没有|没$|了没|有没|登记的|报的|处理|咋样|怎么样|状态|消息|记录|信息|"
                        r"审核|通过|有效|回复|回音|哪一步|哪步|好久|动静|联系我)")


def declines(said: str) -> bool:
    words = compact(said)
    return bool(TO_MAKE.search(words)) and not ABOUT_MADE.search(words)


def my_records(turn: Turn) -> list[Reply] | None:
    action = turn.action or {}
    if action.get("record"):
        return _record_action(turn, str(action["record"]), action.get("do"))
    if not action.get("dialog_answer") and turn.text and declines(turn.text):
        return None
    labourer = turn.labourer()
    if labourer is not None and turn.text and (CHANGE.search(turn.text) or WITHDRAW.search(turn.text)):
        direct = _change_said(turn, labourer.id)
        if direct is not None:
            return direct
    records = list_records(turn.session, labourer_id=labourer.id if labourer else None,
                           channel=turn.message.channel, user_id=turn.message.user_id)
    booked = _signups(turn, labourer.id) if labourer is not None else []
    if records.empty and not booked:
        return [Reply(turn.say("my_records"))]
    status = turn.kb.texts["record_status"]
    texts = _texts(turn)
    lines = [turn.say("records.title")]
    choices: list[Choice] = []
    for need in records.training_needs:
        lines.append(turn.say("records.training", training_type=need.training_type,
                              status=status["training"].get(need.status, need.status)))
        if need.status in CHANGEABLE:
            choices.append(Choice(texts["change_label"].format(item=f"培训：{need.training_type}"),
                                  {"intent": "my_records", "record": f"training:{need.id}"}))
    for wish in records.job_wishes:
        lines.append(turn.say("records.job", job_type=wish.job_type, status=status["job"].get(wish.status, wish.status)))
        if wish.status in CHANGEABLE:
            choices.append(Choice(texts["change_label"].format(item=f"求职：{wish.job_type}"),
                                  {"intent": "my_records", "record": f"job:{wish.id}"}))
    for away in records.working_away:
        lines.append(turn.say("records.working_away", place=away.place or ""))
    for complaint, reply in records.complaints:
        lines.append(turn.say("records.complaint", ticket=complaint.ticket_no, category=complaint.category,
                              status=status["complaint"].get(complaint.status, complaint.status)))
        if reply:
            lines.append(turn.say("records.reply", reply=reply))
    for signup, event in booked:
        state = texts["signup_registered"] if signup.status == "registered" else texts["signup_waitlisted"]
        lines.append(texts["signup_line"].format(event=event.title, status=state))
        choices.append(Choice(texts["withdraw_label"].format(item=event.title),
                              {"intent": "my_records", "record": f"signup:{event.id}", "do": "withdraw"}))
    if choices:
        lines.append(texts["offer"])
    return [Reply("\n".join(lines), tuple(choices))]


def _find(turn: Turn, key: str) -> tuple[str, Any] | None:
    kind, _, ident = key.partition(":")
    labourer = turn.labourer()
    if labourer is None or not ident.isdigit():
        return None
    if kind == "signup":
        found = [e for s, e in _signups(turn, labourer.id) if e.id == int(ident)]
        return ("signup", found[0]) if found else None
    model = {"training": TrainingNeed, "job": JobWish}.get(kind)
    row = turn.session.get(model, int(ident)) if model is not None else None
    if row is None or row.labourer_id != labourer.id or row.status not in CHANGEABLE:
        return None
    return kind, row


def _record_action(turn: Turn, key: str, do: str | None) -> list[Reply]:
    texts = _texts(turn)
    found = _find(turn, key)
    if found is None:
        return [Reply(texts["gone"])]
    kind, row = found
    if do == "withdraw":
        return _withdraw(turn, kind, row)
    if do == "change":
        return _reopen(turn, kind, row, step=None)
    item = row.training_type if kind == "training" else row.job_type
    choices = (Choice(texts["change_choice"], {"intent": "my_records", "record": key, "do": "change"}),
               Choice(texts["withdraw_choice"], {"intent": "my_records", "record": key, "do": "withdraw"}))
    return [Reply(texts["change_or_withdraw"].format(item=item), choices)]


def _withdraw(turn: Turn, kind: str, row: Any) -> list[Reply]:
    texts = _texts(turn)
    if kind == "signup":
        labourer = turn.labourer()
        assert labourer is not None
        outcome = signups.cancel(turn.session, row.id, labourer.id)
        signups.notify_promoted(turn, outcome)
        return [signups.outcome_reply(outcome, tz=turn.settings.timezone, texts=turn.kb.campaign_texts)]
    row.status = "cancelled"
    turn.session.flush()
    item = row.training_type if kind == "training" else row.job_type
    return [Reply(texts["withdrawn"].format(item=item))]


def _slots_of(kind: str, row: Any, turn: Turn) -> dict[str, Any]:
    labourer = turn.labourer()
    if kind == "training":
        when = {"text": row.available_from, "date": row.available_date.isoformat() if row.available_date else None,
                "until": row.available_until.isoformat() if row.available_until else None}
        return {
            "training_type": row.training_type,
            "format": row.preferred_format or "不限",
            "available": when if row.available_from else None,
            "township": {"county": labourer.county if labourer else None, "township": row.township, "village": None}
            if row.township else None,
        }
    when = {"text": row.start_when, "date": row.start_date.isoformat() if row.start_date else None,
            "until": row.start_until.isoformat() if row.start_until else None}
    return {
        "job_type": row.job_type,
        "place": {"scope": row.place_scope, "place": row.place} if row.place_scope else None,
        "pay": row.min_monthly_pay,
        "start": when if row.start_when else None,
        "public_welfare": row.accepts_public_welfare,
        "home_based": row.accepts_home_based,
    }


def _reopen(turn: Turn, kind: str, row: Any, step: str | None, said: str | None = None) -> list[Reply]:
    name = {"training": "register_training", "job": "register_job"}[kind]
    slots = {k: v for k, v in _slots_of(kind, row, turn).items() if v is not None}
    return dialogs.reopen(turn, name, slots, step=step, replaces={"kind": kind, "id": row.id}, said=said)


def _change_said(turn: Turn, labourer_id: int) -> list[Reply] | None:
    """"我之前报的电焊，时间要改一下": the record it names, changed at the slot it names."""
    text = turn.text
    trade = match_training_type(text, turn.kb)
    job = match_job_type(text, turn.kb)
    needs = turn.session.scalars(select(TrainingNeed).where(
        TrainingNeed.labourer_id == labourer_id, TrainingNeed.status.in_(CHANGEABLE))).all()
    wishes = turn.session.scalars(select(JobWish).where(
        JobWish.labourer_id == labourer_id, JobWish.status.in_(CHANGEABLE))).all()
    candidates: list[tuple[str, Any]] = [("training", n) for n in needs if n.training_type == trade]
    candidates += [("job", w) for w in wishes if w.job_type == job]
    if not candidates:
        if "培训" in text and len(needs) == 1:
            candidates = [("training", needs[0])]
        elif ("求职" in text or "工作" in text) and len(wishes) == 1:
            candidates = [("job", wishes[0])]
        elif len(needs) + len(wishes) == 1:
            candidates = [("training", n) for n in needs] + [("job", w) for w in wishes]
    if len(candidates) != 1:
        return None
    kind, row = candidates[0]
    if WITHDRAW.search(text) and not CHANGE.search(text):
        return _withdraw(turn, kind, row)
    name = {"training": "register_training", "job": "register_job"}[kind]
    # the trade that names the record is not what is being changed: look for the slot in the rest
    rest = text
    for word in filter(None, (trade, job, "培训", "求职", "找工作", "登记")):
        rest = rest.replace(word, "")
    step = dialogs.slot_named(turn, name, rest)
    if step in ("training_type", "job_type"):
        step = None
    return _reopen(turn, kind, row, step=step, said=rest)


def change_stated(turn: Turn) -> list[Reply] | None:
    """Pre-route: "上回报的那个电焊 时间搞错了 要改成开春" changes that record ("把电焊那个撤了", "不想找工作了
    撤回" withdraws it), whatever the router made of it (it may hesitate between the events and the records):
    someone on the roster, no dialog open, a word of change or withdrawal and a record named by its trade or
    as a registration."""
    said = turn.text or ""  # the words first: looking the person up costs a query on every message
    if turn.state.dialog or not (CHANGE.search(said) or WITHDRAW.search(said)):  # 把电焊那个撤了: a withdrawal too
        return None
    if not (RECORD_WORDS.search(said) or match_training_type(said, turn.kb) or match_job_type(said, turn.kb)):
        return None
    labourer = turn.labourer()
    if labourer is None:
        return None
    parse = turn.parse
    if parse is not None and parse.intent in ("unsubscribe", "human_handoff", "subscribe") and not parse.ambiguous:
        return None
    turn.action = {"intent": "my_records"}
    return _change_said(turn, labourer.id)


HANDLERS = {
    "my_records": my_records,
}
