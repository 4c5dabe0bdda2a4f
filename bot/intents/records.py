"""my_records: what this person registered and where each stands."""

from __future__ import annotations

from bot.channels.base import Reply
from bot.conversation import Turn
from bot.intents import handles


@handles("my_records")
def my_records(turn: Turn) -> list[Reply]:
    return [Reply(turn.say("my_records"))]
