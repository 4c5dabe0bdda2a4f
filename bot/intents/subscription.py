"""subscribe / unsubscribe: the notification flag of this channel on the labourer's registry entry.

A chat not yet bound to the registry keeps its choice in the conversation state; binding carries it over
(bot.registry.bind_channel). SMS keyword opt-outs the gateway handles itself arrive here as well.
"""

from __future__ import annotations

from bot.channels.base import Reply
from bot.conversation import Turn
from bot.registry import set_subscription


def subscription(turn: Turn) -> list[Reply]:
    on = turn.action["intent"] == "subscribe"
    labourer = turn.labourer()
    if labourer is not None:
        set_subscription(labourer, turn.message.channel, on)
    context = dict(turn.state.context or {})
    context["unsubscribed"] = not on
    turn.state.context = context
    return [Reply(turn.say("subscribe_ok" if on else "unsubscribe_ok"))]


HANDLERS = {
    "subscribe": subscription,
    "unsubscribe": subscription,
}
