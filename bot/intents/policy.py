"""policy_question: the short answer first, the detail on "1"; menus to browse topics and entries."""

from __future__ import annotations

from bot.channels.base import Choice, Reply
from bot.conversation import Turn


def answer(turn: Turn, entry_id: str) -> Reply:
    entry = turn.kb.entries[entry_id]
    more = (Choice(turn.say("policy_detail_label"), {"intent": "policy_detail", "entry": entry.id}),) if entry.detail else ()
    return Reply(entry.answer, more)


def policy_question(turn: Turn) -> list[Reply] | None:
    parse = turn.parse
    if parse is None:
        return None
    if parse.entry_id in turn.kb.entries:
        return [answer(turn, parse.entry_id)]
    if parse.topic in turn.kb.topics:
        return turn.run("policy_topic", topic=parse.topic)
    # A policy question we cannot place: say so honestly instead of guessing.
    return [Reply(turn.say("policy_unsure"))]


def policy_entry(turn: Turn) -> list[Reply]:
    entry_id = turn.action.get("entry")
    if entry_id not in turn.kb.entries:  # an entry removed since the menu was shown
        return [Reply(turn.say("policy_unsure"))]
    return [answer(turn, entry_id)]


def policy_detail(turn: Turn) -> list[Reply]:
    entry = turn.kb.entries.get(turn.action.get("entry", ""))
    if entry is None or not entry.detail:
        return [Reply(turn.say("policy_detail_none"))]
    source = turn.say("policy_source", source=entry.source) if entry.source else ""
    return [Reply(entry.detail + source)]


def policy_menu(turn: Turn) -> list[Reply]:
    choices = tuple(
        Choice(info["name"], {"intent": "policy_topic", "topic": topic}) for topic, info in turn.kb.topics.items()
    )
    return [Reply(turn.say("policy_menu"), choices)]


def policy_topic(turn: Turn) -> list[Reply]:
    topic = turn.action.get("topic")
    entries = turn.kb.entries_for(topic) if topic in turn.kb.topics else []
    if not entries:
        return [Reply(turn.say("policy_unsure"))]
    choices = tuple(Choice(e.title, {"intent": "policy_entry", "entry": e.id}) for e in entries)
    return [Reply(turn.say("policy_topic_entries", topic=turn.kb.topics[topic]["name"]), choices)]


HANDLERS = {
    "policy_question": policy_question,
    "policy_entry": policy_entry,
    "policy_detail": policy_detail,
    "policy_menu": policy_menu,
    "policy_topic": policy_topic,
}
