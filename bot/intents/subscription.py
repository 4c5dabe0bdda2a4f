"""subscribe / unsubscribe: the notification flag of this channel on the labourer's registry entry.

A chat not yet bound to the registry keeps its choice in the conversation state; binding carries it over
(bot.registry.bind_channel). SMS keyword opt-outs the gateway handles itself arrive here as well.
"""

from __future__ import annotations

from bot.channels.base import Reply
from bot.conversation import Turn
from bot.intents import handles
from bot.registry import labourer_for, set_subscription


@handles("subscribe", "unsubscribe")
def subscription(turn: Turn) -> list[Reply]:
    on = turn.action["intent"] == "subscribe"
    labourer = labourer_for(turn.session, turn.state, data_key=turn.settings.data_key)
    if labourer is not None:
        set_subscription(labourer, turn.message.channel, on)
    context = dict(turn.state.context or {})
    context["unsubscribed"] = not on
    turn.state.context = context
    return [Reply(turn.say("subscribe_ok" if on else "unsubscribe_ok"))]
