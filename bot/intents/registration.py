"""register_training, register_job, rights_complaint: the entry points of the registration dialogs.

Until the dialog engine (issue 3) lands these say what will happen and offer the village station.
"""

from __future__ import annotations

from bot.channels.base import Reply
from bot.conversation import Turn
from bot.intents import handles


@handles("register_training", "register_job", "rights_complaint")
def start_registration(turn: Turn) -> list[Reply]:
    return [Reply(turn.say(turn.action["intent"]) + turn.say("registration_soon"))]
