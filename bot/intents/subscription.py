"""subscribe / unsubscribe: notification flags of the bound labourer on this channel."""

from __future__ import annotations

from bot.channels.base import Reply
from bot.conversation import Turn
from bot.intents import handles


@handles("subscribe", "unsubscribe")
def subscription(turn: Turn) -> list[Reply]:
    on = turn.action["intent"] == "subscribe"
    labourer = turn.labourer()
    if labourer is not None:
        if turn.message.channel == "sms":
            labourer.subscribed_sms = on
        else:
            labourer.subscribed_wechat = on
    context = dict(turn.state.context or {})
    context["unsubscribed"] = not on
    turn.state.context = context
    return [Reply(turn.say("subscribe_ok" if on else "unsubscribe_ok"))]
