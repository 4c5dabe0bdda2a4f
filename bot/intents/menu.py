"""greeting, help, the subscribe welcome, and the honest fallback (out_of_scope)."""

from __future__ import annotations

from bot.channels.base import Choice, Reply
from bot.conversation import Turn


def main_menu(turn: Turn, lead: str = "") -> Reply:
    menu = turn.kb.texts["menu"]
    choices = tuple(Choice(c["label"], dict(c["action"])) for c in menu["choices"])
    return Reply("".join(part for part in (lead, menu["title"]) if part), choices, footer=menu["footer"])


def greet(turn: Turn) -> list[Reply]:
    lead = {
        "greeting": turn.say("greeting"),
        "welcome": turn.say("welcome"),
    }.get(turn.action.get("intent"), "")
    reason = turn.action.get("reason")
    if reason == "empty":
        lead = turn.say("empty")
    elif reason == "media":
        lead = turn.say("media_ack")
    return [main_menu(turn, lead)]


def out_of_scope(turn: Turn) -> list[Reply]:
    # neighbouring government business (医保, 养老金, 低保 …): where to go, not "I did not understand"
    referral = turn.parse.referral if turn.parse is not None else None
    said = turn.knowledge.router.referral_reply(referral) if referral else None
    if said:
        return [Reply(said)]
    return [main_menu(turn, turn.say("out_of_scope"))]


HANDLERS = {
    "greeting": greet,
    "help": greet,
    "welcome": greet,
    "out_of_scope": out_of_scope,
}
