"""Signing up for a listed event, as a dialog step (the dialog itself is declared in definitions.py).

After the events list ("回复数字报名"), "报名", "我去", "报名 做菜那个", a number or the event's name signs
up for that event — asking which one when several were listed and the message does not say. A person the
registry does not know yet gives only what the sign-up needs (name, and a phone except on SMS), not a
whole job registration. Capacity and the waiting list are bot.signups' (the same rules as replies to a
broadcast); "不去了" cancels there too.

The pre-route hook `after_events_list` starts the dialog only when the last menu the person saw was the
events list: elsewhere "报名" keeps meaning what the router says.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from bot import signups
from bot.channels.base import Reply
from bot.dialogs import extractors as x
from bot.dialogs import validators as v
from bot.dialogs.engine import Run, start
from bot.models import Event
from bot.nlu.entities import match_training_type

if TYPE_CHECKING:
    from bot.conversation import Turn

NAME = "event_signup"
_SIGNUP_LEAD = re.compile(r"^(我要报名|我想报名|帮我报名|报个名|我报名|报名|我要去|我想去|我去|我参加|我要参加|参加|要去|我报)")
# Said anywhere to the events list: 我想报那个电工的, 做菜那个我去, 电工的我想去听一哈
_SIGNUP_VERB = re.compile(r"(我要报名|我想报名|帮我报名|报个名|报一个|我报名|报名|我想报|我要报|想报|要报|我报|我要去|我想去|我也去|我去|"
                          r"想去|要去|也去|都去|我参加|我要参加|参加|去听|去学|算我一个|算我|报)")
_POINTER = re.compile(r"(那个|这个|那场|这场|那期|那一个|那班)")
_FILLER = re.compile(r"(那个|这个|那场|这场|那期|两个都|都|的|吧|哈|嘛|一下|一哈)")


def listed(turn: "Turn") -> list[int]:
    """The events of the last menu shown, when that menu was the events list."""
    menu = (turn.state.context or {}).get("menu") or []
    ids = [int(c["action"]["event"]) for c in menu
           if (c.get("action") or {}).get("intent") == "event_signup" and c["action"].get("event") is not None]
    return ids if ids and len(ids) == len(menu) else []


def prepare(run: Run) -> None:
    """Remember the listed events (title → id, and what a fragment may name: trade, township)."""
    ids = listed(run.turn)
    events = run.turn.session.scalars(select(Event).where(Event.id.in_(ids))).all() if ids else []
    by_id = {e.id: e for e in events}
    run.meta["events"] = {by_id[i].title: i for i in ids if i in by_id}
    run.meta["option_facts"] = {by_id[i].title: {"training_type": by_id[i].training_type, "township": by_id[i].township}
                                for i in ids if i in by_id}


def event_choices(run: Run) -> tuple[str, ...]:
    return tuple(run.meta.get("events") or {})


def event_id(run: Run) -> int:
    return int(run.meta["events"][run.slots["event"]])


def _score(words: str, title: str, facts: dict[str, Any], kb: Any) -> int:
    grams = {words[i:i + 2] for i in range(len(words) - 1)}
    about = title + (facts.get("training_type") or "") + (facts.get("township") or "")
    score = sum(1 for g in grams if g in about)
    if words and facts.get("training_type") and match_training_type(words, kb) == facts["training_type"]:
        score += 5
    return score


def parse_event(text: str, ctx: v.SlotContext) -> str:
    """One of the events listed: its number, its title, or the one a fragment points at (做菜那个 → the
    cooking class). Several listed and nothing says which: asked (not counted as a failed answer)."""
    titles = ctx.options
    words = v.FOR_SOMEONE.sub("", v.compact(text))  # 帮我妈报第二个: whom it is for says nothing of which
    rest = _FILLER.sub("", _SIGNUP_VERB.sub("", words))
    if rest.isdigit() and 1 <= int(rest) <= len(titles):
        return titles[int(rest) - 1]
    at = v.ordinal(rest, len(titles))  # 第二个, 最后那个
    if at is not None:
        return titles[at - 1]
    if rest in titles:
        return rest
    if not rest:
        if len(titles) == 1:
            return titles[0]
        raise v.Invalid("which", counts=False)
    scores = sorted(((_score(rest, t, ctx.option_facts.get(t) or {}, ctx.kb), t) for t in titles), reverse=True)
    if scores and scores[0][0] > 0 and (len(scores) == 1 or scores[0][0] > scores[1][0]):
        return scores[0][1]
    if _SIGNUP_VERB.search(words):
        raise v.Invalid("which", counts=False)
    raise v.Invalid()


def event_mentioned(text: str, ctx: v.SlotContext) -> x.Found | None:
    try:
        return x.Found(parse_event(text, ctx))
    except v.Invalid:
        return None


def after_events_list(turn: "Turn") -> list[Reply] | None:
    """Pre-route hook: a sign-up said to the events list starts the sign-up; anything else passes."""
    ids = listed(turn)
    if not ids or not turn.text or turn.state.dialog:
        return None
    words = v.FOR_SOMEONE.sub("", v.compact(turn.text))
    rest = _FILLER.sub("", _SIGNUP_VERB.sub("", words))
    if _SIGNUP_LEAD.match(words) or signups.classify(turn.text) == "signup" or (words.isdigit() and 1 <= int(words) <= len(ids)) \
            or v.ordinal(rest, len(ids)) is not None:  # 第二个, 报第三个, 第一个 我想去
        return start(turn, NAME)
    events = turn.session.scalars(select(Event).where(Event.id.in_(ids))).all()
    if any(e.title and v.compact(e.title)[:4] in words for e in events):
        return start(turn, NAME)
    facts = {e.title: {"training_type": e.training_type, "township": e.township} for e in events}
    scores = sorted((_score(rest, title, fact, turn.kb) for title, fact in facts.items()), reverse=True)
    # a sign-up word anywhere, and the rest says nothing but which of the listed events (or nothing)
    if _SIGNUP_VERB.search(words) and (len(rest) <= 2 or scores[0] > 0):
        return start(turn, NAME)
    # 做面食那个: pointing at one of the listed events by what it teaches, with no other wish
    if _POINTER.search(words) and scores[0] > 0 and (len(scores) == 1 or scores[0] > scores[1]):
        return start(turn, NAME)
    return None
